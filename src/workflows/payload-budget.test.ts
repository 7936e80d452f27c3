import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { loadDataConverter } from '@temporalio/common/lib/internal-non-workflow/index.js';
import proto from '@temporalio/proto';
import { createDataConverter } from '../codec.ts';
import { encryptEnvVars } from '../phala/env-crypto.ts';
import { sealEnvelope } from '../activities/sealed-env-reader.ts';
import { DEFAULT_PAYLOAD_LIMIT_BYTES, envPayloadBudget, payloadBudgetProblem, utf8Length } from './payload-budget.ts';
import type { UpdateEnvInput } from './definitions.ts';

// The longest key id the codec allows: the budget assumes it.
const converter = loadDataConverter(createDataConverter(`${'k'.repeat(64)}:${randomBytes(32).toString('base64')}`));
const PUBLIC_KEY = '8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f';

/** What the server measures: the encoded payload inside a Payloads list. */
async function encodedSize(value: unknown): Promise<number> {
  const [p] = await converter.payloadCodecs[0]!.encode([converter.payloadConverter.toPayload(value)]);
  return proto.temporal.api.common.v1.Payloads.encode({ payloads: [p!] }).finish().length;
}

const KiB = 1024;
const envOf = (n: number, value: () => string) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`VAR_${i}`, value()]));

describe('payload budget', () => {
  it('counts UTF-8 bytes like Buffer does', () => {
    for (const s of ['', 'abc', 'é', '€', '😀', 'a\u0000"\\\n', '\ud800x']) assert.equal(utf8Length(s), Buffer.byteLength(s), s);
  });

  for (const [name, value] of [
    ['base64 text', () => randomBytes(3 * KiB).toString('base64')],
    ['quotes and line breaks', () => '"\n\\'.repeat(1000)],
    ['control characters', () => '\u0001'.repeat(3000)],
    ['non-ASCII', () => 'é€😀'.repeat(500)],
  ] as const) {
    it(`predicts the exact encoded size of every payload (${name})`, async () => {
      const input: UpdateEnvInput = { cvmId: 'cvm-1', env: envOf(5, value), requestId: 'r-1' };
      const budget = envPayloadBudget(input)!;
      const list = Object.entries(input.env).map(([key, v]) => ({ key, value: v as string }));
      const sealed = sealEnvelope(Buffer.from(await encryptEnvVars(list, PUBLIC_KEY), 'hex'));
      const actual = [
        await encodedSize(input),
        await encodedSize({ env: list, envKeys: list.map((e) => e.key) }),
        await encodedSize({ env: list, publicKey: PUBLIC_KEY }),
        await encodedSize(sealed),
      ];
      assert.deepEqual(
        budget.needs.map((n) => n.bytes),
        actual,
      );
      assert.equal(
        budget.envBytes,
        list.reduce((n, e) => n + Buffer.byteLength(e.key) + Buffer.byteLength(e.value), 0),
      );
    });
  }

  it('fits the guest maximum of plain text (1 MiB of keys and values), and 4 x 128 KiB of quotes', () => {
    const valueBytes = (1024 * KiB) / 8 - 'VAR_0'.length;
    const max = envOf(8, () => 'x'.repeat(valueBytes));
    const plain = envPayloadBudget({ cvmId: 'c', env: max })!;
    assert.equal(plain.envBytes, 1024 * KiB);
    assert.ok(plain.fits, `${plain.largest.bytes} > ${plain.limitBytes}`);
    assert.equal(payloadBudgetProblem({ cvmId: 'c', env: envOf(4, () => '"'.repeat(128 * KiB)) }), undefined);
  });

  it('refuses an env whose JSON does not fit, with the env size, the encoded size and the limit', () => {
    const input: UpdateEnvInput = { cvmId: 'c', env: envOf(8, () => '"'.repeat(128 * KiB - 8)) };
    const budget = envPayloadBudget(input)!;
    assert.equal(budget.fits, false);
    const problem = payloadBudgetProblem(input)!;
    assert.match(
      problem,
      new RegExp(
        `^env is ${budget.envBytes} bytes; encoded it needs ${budget.largest.bytes} bytes of one payload \\(.+\\); the limit is ${DEFAULT_PAYLOAD_LIMIT_BYTES}\\.`,
      ),
    );
    assert.doesNotMatch(problem, /""/);
  });

  it('leaves a malformed env to the input checks', () => {
    assert.equal(envPayloadBudget({ cvmId: 'c', env: 'nope' as never }), undefined);
    assert.equal(payloadBudgetProblem({ cvmId: 'c', env: { A: 1 } as never }), undefined);
  });
});
