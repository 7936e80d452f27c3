/**
 * Loaded by path (see `failureConverterPath` in codec.ts) in the client, the
 * worker and the workflow sandbox. With `encodeCommonAttributes`, a failure's
 * message and stack trace travel in a payload, which the codec encrypts; the
 * history then only shows "Encoded failure". Keep this file free of anything
 * that must not enter the workflow bundle.
 */
import { DefaultFailureConverter } from '@temporalio/common';

export const failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
