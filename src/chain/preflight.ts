import {
  AbiDecodingDataSizeTooSmallError,
  AbiDecodingZeroDataError,
  BaseError,
  ContractFunctionRevertedError,
  ContractFunctionZeroDataError,
  getAddress,
  type Address,
  type Client,
} from 'viem';
import { getBalance, getBlockNumber, getChainId, getCode, readContract } from 'viem/actions';
import { dstackAppAbi } from './dstack-app-abi.ts';
import { ChainError, toChainError, withChainErrors } from './errors.ts';
import { normalizeComposeHash, parseAddress, toSafeNumber } from './inputs.ts';

/** How long a revert from the app contract is given to prove a passing reorg before it counts. */
const CONFIRM_NOT_AN_APP_AFTER_MS = 1_000;

export interface PreflightParams {
  /** kms_info.chain_id: the chain the app lives on. */
  expectedChainId: number;
  app: Address;
  composeHash: string;
  /** The service's signer; omitted when no key is configured (operators register). */
  signer?: Address;
}

/**
 * What to do next, checked before any gas is spent:
 *  - ok: false, wrong-chain: the RPC serves another chain than the app's; nothing else
 *    was read (reads there would be meaningless). A configuration problem.
 *  - ok: false, no-contract: no code at the app address on this chain.
 *  - ok: false, not-an-app: code there, but owner()/allowedComposeHashes do not answer.
 *  - ok: true, next 'already-allowed': find the existing registration (findRegistration).
 *  - ok: true, next 'register': the signer owns the app; sign and send.
 *  - ok: true, next 'needs-operator': someone else owns it (e.g. a multisig); wait for an
 *    operator to register and hand over the tx hash (verifyRegistration).
 * All reads are pinned to `blockNumber`.
 */
export type PreflightResult =
  | { ok: false; reason: 'wrong-chain'; expectedChainId: number; actualChainId: number; message: string }
  | { ok: false; reason: 'no-contract' | 'not-an-app'; chainId: number; app: Address; blockNumber: number; message: string }
  | {
      ok: true;
      chainId: number;
      blockNumber: number;
      app: Address;
      owner: Address;
      signer: Address | null;
      signerIsOwner: boolean;
      composeHashAllowed: boolean;
      /** Decimal wei; null without a signer. */
      signerBalanceWei: string | null;
      next: 'already-allowed' | 'register' | 'needs-operator';
    };

export async function preflight(client: Client, params: PreflightParams): Promise<PreflightResult> {
  if (!Number.isSafeInteger(params.expectedChainId) || params.expectedChainId <= 0) {
    throw new ChainError('INVALID_INPUT', 'expectedChainId must be a positive integer');
  }
  const app = parseAddress(params.app, 'app');
  const composeHash = normalizeComposeHash(params.composeHash);
  const signer = params.signer !== undefined ? parseAddress(params.signer, 'signer') : null;

  // eth_chainId straight from the node: viem would otherwise answer from the chain object.
  const actualChainId = await withChainErrors('reading eth_chainId', () => getChainId(client));
  if (actualChainId !== params.expectedChainId) {
    return {
      ok: false,
      reason: 'wrong-chain',
      expectedChainId: params.expectedChainId,
      actualChainId,
      message: `the RPC serves chain ${actualChainId} but the app is on chain ${params.expectedChainId}`,
    };
  }

  const head = await withChainErrors('reading the latest block number', () => getBlockNumber(client, { cacheTime: 0 }));
  const blockNumber = toSafeNumber(head, 'block number');
  const code = await withChainErrors(`reading the code at ${app}`, () => getCode(client, { address: app, blockNumber: head }));
  if (!code || code === '0x') {
    return {
      ok: false,
      reason: 'no-contract',
      chainId: actualChainId,
      app,
      blockNumber,
      message: `there is no contract at ${app} on chain ${actualChainId}`,
    };
  }

  let owner: Address;
  let composeHashAllowed: boolean;
  try {
    [owner, composeHashAllowed] = await Promise.all([
      readContract(client, { address: app, abi: dstackAppAbi, functionName: 'owner', blockNumber: head }),
      readContract(client, {
        address: app,
        abi: dstackAppAbi,
        functionName: 'allowedComposeHashes',
        args: [composeHash],
        blockNumber: head,
      }),
    ]);
  } catch (err) {
    // A revert or an undecodable answer is about the contract; anything else is the RPC's.
    const aboutContract =
      err instanceof BaseError &&
      err.walk(
        (e) =>
          e instanceof ContractFunctionRevertedError ||
          e instanceof ContractFunctionZeroDataError ||
          e instanceof AbiDecodingZeroDataError ||
          e instanceof AbiDecodingDataSizeTooSmallError,
      ) !== null;
    if (!aboutContract) throw toChainError(err, 'reading the app contract');
    // No data from a contract whose code we just read at this very height: the node's state
    // moved under us (a reorg replacing that block, a backend behind a load balancer). Ask
    // again; only a revert says the contract is not an app.
    const noData =
      err instanceof BaseError &&
      err.walk((e) => e instanceof ContractFunctionZeroDataError || e instanceof AbiDecodingZeroDataError) !== null;
    if (noData) {
      throw new ChainError(
        'RPC_ERROR',
        `the contract at ${app} answered no data at block ${head}, where it has code: the chain changed meanwhile`,
      );
    }
    // A revert at a height a reorg is replacing says nothing about the contract: confirm on the
    // settled chain before calling it not an app.
    await new Promise((resolve) => setTimeout(resolve, CONFIRM_NOT_AN_APP_AFTER_MS));
    const again = await readContract(client, { address: app, abi: dstackAppAbi, functionName: 'owner' }).then(
      () => true,
      () => false,
    );
    if (again) {
      throw new ChainError('RPC_ERROR', `the contract at ${app} reverted at block ${head} but answers now: the chain changed meanwhile`);
    }
    return {
      ok: false,
      reason: 'not-an-app',
      chainId: actualChainId,
      app,
      blockNumber,
      message: `the contract at ${app} does not answer owner()/allowedComposeHashes() like a DstackApp`,
    };
  }

  const signerBalanceWei =
    signer === null
      ? null
      : (
          await withChainErrors(`reading the balance of ${signer}`, () => getBalance(client, { address: signer, blockNumber: head }))
        ).toString();
  const signerIsOwner = signer !== null && signer.toLowerCase() === owner.toLowerCase();
  return {
    ok: true,
    chainId: actualChainId,
    blockNumber,
    app,
    owner: getAddress(owner),
    signer,
    signerIsOwner,
    composeHashAllowed,
    signerBalanceWei,
    next: composeHashAllowed ? 'already-allowed' : signerIsOwner ? 'register' : 'needs-operator',
  };
}
