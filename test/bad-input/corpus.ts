/**
 * The bad-input corpus: every way a caller, an operator or the API can hand this service
 * something wrong, each with the clear error it must get. Pure data (no I/O, no stack): the test
 * runs it against the real stack (`test/bad-input-corpus.test.ts`) and `npm run corpus:table`
 * prints it as the release note's table.
 *
 * Secrets in inputs are marker strings starting with `SECRET-`: whatever reaches an error, the
 * CLI's output, the worker's log or a search attribute is searched for that prefix.
 *
 * Placeholders, filled in at run time: `{waitingCvm}` (a CVM whose change waits for an operator),
 * `{envFile}` (a file holding the case's `envFile` text), `{ownApp}` / `{foreignApp}` (an app the
 * worker's signer owns / does not own), `{cvm}` (the hostile case's fresh CVM) and
 * `{unrelatedTx}` (a mined transaction that registers nothing).
 */

export const MARKER_PREFIX = 'SECRET-';
const m = (tag: string) => `${MARKER_PREFIX}${tag}-7f3a91c2`;

export type EntryPoint = 'cli' | 'startEnvUpdate' | 'raw start' | 'signal' | 'update' | 'hostile API';

/** What must come back: a type (failure type, error class or exit code), a message, within a bound. */
export interface Expected {
  /** `exit 2`, an error class, a failure type, `ignored` (a signal), or `completes`. */
  type: string;
  message: RegExp;
  /** The whole case (start to error) ends within this; nothing is retried for longer. */
  withinSeconds: number;
  /** What happens, in words, for the table. */
  happens: string;
}

interface Base {
  id: string;
  entry: EntryPoint;
  /** What is wrong with the input, for the table. */
  input: string;
  expect: Expected;
}

export interface CliCase extends Base {
  entry: 'cli';
  args: string[];
  /** Text of the file `{envFile}` names. */
  envFile?: string;
  stdin?: string;
  /** Needs Temporal (the change waits, fails or is refused there); the others exit before connecting. */
  online?: true;
}

export interface ClientCase extends Base {
  entry: 'startEnvUpdate';
  value: unknown;
}

export interface RawStartCase extends Base {
  entry: 'raw start';
  /** The start's `args`, through the payload codec, as another SDK or the UI's start form sends them. */
  args: unknown[];
}

export interface OperatorCase extends Base {
  entry: 'signal' | 'update';
  name: string;
  /** The argument list as sent: `[]` is the UI's form left empty. */
  args: unknown[];
}

export interface HostileCase extends Base {
  entry: 'hostile API';
  cvm: { kms: 'phala' } | { kms: 'onchain'; app: 'own' };
  /** Simulator fault rules (see src/simulator/faults.ts); `cvmId: '{cvm}'` scopes a rule to the case. */
  rules: Record<string, unknown>[];
  /** Not scoped to the CVM (the route has none): such a case runs alone. */
  global?: true;
}

export type BadInputCase = CliCase | ClientCase | RawStartCase | OperatorCase | HostileCase;

const HEX64 = 'a'.repeat(64);
const usage = (message: RegExp, happens: string): Expected => ({ type: 'exit 2', message, withinSeconds: 30, happens });
const invalid = (message: RegExp, happens: string): Expected => ({ type: 'InvalidInput', message, withinSeconds: 10, happens });
const refused = (message: RegExp, happens: string): Expected => ({
  type: 'OperatorActionRefused',
  message,
  withinSeconds: 10,
  happens,
});
const ignored = (message: RegExp, happens: string): Expected => ({ type: 'ignored', message, withinSeconds: 10, happens });

const ENV_ARGS = ['-e', `A=${m('a')}`];

const cli: CliCase[] = [
  {
    id: 'cli-01',
    entry: 'cli',
    input: '`--cvm ..`',
    args: ['update', '--cvm', '..', ...ENV_ARGS],
    expect: usage(/--cvm: cvmId must be a CVM id/, 'refused before connecting; names --cvm'),
  },
  {
    id: 'cli-02',
    entry: 'cli',
    input: '`--cvm ../envs` (a path)',
    args: ['update', '--cvm', '../envs', ...ENV_ARGS],
    expect: usage(/--cvm: cvmId must be a CVM id/, 'refused before connecting'),
  },
  {
    id: 'cli-03',
    entry: 'cli',
    input: '`--cvm` of 129 characters',
    args: ['update', '--cvm', 'c'.repeat(129), ...ENV_ARGS],
    expect: usage(/cvmId is 129 characters; at most 128/, 'refused, with the length and the limit'),
  },
  {
    id: 'cli-04',
    entry: 'cli',
    input: '`--cvm` with no value',
    args: ['update', '--cvm', ...ENV_ARGS],
    expect: usage(/--cvm needs a value/, 'refused; the next flag is not taken as the id'),
  },
  {
    id: 'cli-05',
    entry: 'cli',
    input: '`--confirmations 0`',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--confirmations', '0'],
    expect: usage(/--confirmations must be an integer from 1 to 256/, 'refused with the bounds'),
  },
  {
    id: 'cli-06',
    entry: 'cli',
    input: '`--confirmations 257`',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--confirmations', '257'],
    expect: usage(/--confirmations must be an integer from 1 to 256/, 'refused with the bounds'),
  },
  {
    id: 'cli-07',
    entry: 'cli',
    input: '`--confirmations 1.5`',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--confirmations', '1.5'],
    expect: usage(/--confirmations must be an integer from 1 to 256/, 'refused with the bounds'),
  },
  {
    id: 'cli-08',
    entry: 'cli',
    input: '`--confirmations=-1`',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--confirmations=-1'],
    expect: usage(/--confirmations must be an integer from 1 to 256/, 'refused with the bounds'),
  },
  {
    id: 'cli-09',
    entry: 'cli',
    input: '`--confirmations abc`',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--confirmations', 'abc'],
    expect: usage(/--confirmations must be an integer from 1 to 256/, 'refused with the bounds'),
  },
  {
    id: 'cli-10',
    entry: 'cli',
    input: '`--policy STRICT` (wrong case)',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--policy', 'STRICT'],
    expect: usage(/--policy must be strict, warn or off/, 'refused; never falls back to warn'),
  },
  {
    id: 'cli-11',
    entry: 'cli',
    input: '`--policy=` (empty)',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--policy='],
    expect: usage(/--policy must be strict, warn or off/, 'refused'),
  },
  {
    id: 'cli-12',
    entry: 'cli',
    input: '`--request-id "two words"`',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--request-id', 'two words'],
    expect: usage(/--request-id: requestId may hold only letters, digits.*\(no spaces\)/, 'refused; names the allowed characters'),
  },
  {
    id: 'cli-13',
    entry: 'cli',
    input: '`--request-id` of 201 characters',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--request-id', 'r'.repeat(201)],
    expect: usage(/requestId is 201 characters; at most 200/, 'refused with the length and the limit'),
  },
  {
    id: 'cli-14',
    entry: 'cli',
    input: '`--request-id=.hidden` (bad first character)',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--request-id=.hidden'],
    expect: usage(/--request-id: requestId may hold only/, 'refused'),
  },
  {
    id: 'cli-15',
    entry: 'cli',
    input: '`-e A=… -e A=…` (duplicate key)',
    args: ['update', '--cvm', 'cvm-x', '-e', `A=${m('dup1')}`, '-e', `A=${m('dup2')}`],
    expect: usage(/-e #2 "A": duplicate key, first given at -e #1/, 'refused; names both flags, no value'),
  },
  {
    id: 'cli-16',
    entry: 'cli',
    input: '`-e` without `=` (a pasted secret)',
    args: ['update', '--cvm', 'cvm-x', '-e', m('noeq')],
    expect: usage(/-e #1: expected KEY=VALUE but there is no '='/, 'refused; the text is not echoed'),
  },
  {
    id: 'cli-17',
    entry: 'cli',
    input: '`-e =value` (empty key)',
    args: ['update', '--cvm', 'cvm-x', '-e', `=${m('nokey')}`],
    expect: usage(/-e #1: expected KEY=VALUE but the key is empty/, 'refused; value not echoed'),
  },
  {
    id: 'cli-18',
    entry: 'cli',
    input: '`-e MY-KEY=…` (invalid key name)',
    args: ['update', '--cvm', 'cvm-x', '-e', `MY-KEY=${m('badkey')}`],
    expect: usage(
      /-e #1: key starting "MY" has a character not allowed in env names at position 2/,
      'refused; the key named up to the bad character',
    ),
  },
  {
    id: 'cli-19',
    entry: 'cli',
    input: 'a stray `KEY=value` argument (no `-e`)',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, `B=${m('stray')}`],
    expect: usage(/expects no arguments, got 1 argument \(variables are passed as -e KEY=VALUE\)/, 'refused; counted, not echoed'),
  },
  {
    id: 'cli-20',
    entry: 'cli',
    input: 'unknown option `--token=…`',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, `--token=${m('opt')}`],
    expect: usage(/update: unknown option --token$/m, 'refused; the option named without its value'),
  },
  {
    id: 'cli-21',
    entry: 'cli',
    input: 'both `--env-file` and `-e`',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '{envFile}', ...ENV_ARGS],
    envFile: 'A=1\n',
    expect: usage(/either --env-file or -e KEY=VALUE, not both/, 'refused'),
  },
  {
    id: 'cli-22',
    entry: 'cli',
    input: '`--keys A,1B` (invalid name)',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--keys', 'A,1B'],
    expect: usage(/--keys: entry #2 is not a valid env name/, 'refused; entry counted'),
  },
  {
    id: 'cli-23',
    entry: 'cli',
    input: '`--keys` missing an env key',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '-e', 'B=2', '--keys', 'A'],
    expect: usage(/--keys must include every key of the env; missing: B/, 'refused; the guest would drop B silently'),
  },
  {
    id: 'cli-24',
    entry: 'cli',
    input: '`--no-wait=yes` (flag with a value)',
    args: ['update', '--cvm', 'cvm-x', ...ENV_ARGS, '--no-wait=yes'],
    expect: usage(/--no-wait takes no value/, 'refused'),
  },
  {
    id: 'cli-25',
    entry: 'cli',
    input: 'env file: a key with a dot',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '{envFile}'],
    envFile: `GOOD=1\nBAD.NAME=${m('dot')}\n`,
    expect: usage(/envs\[1\]: key starting "BAD" has a character not allowed/, 'refused; key named, value not'),
  },
  {
    id: 'cli-26',
    entry: 'cli',
    input: 'env file: a key starting with a digit',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '{envFile}'],
    envFile: `1ST=${m('digit')}\n`,
    expect: usage(/key "1ST" must start with a letter or "_"/, 'refused'),
  },
  {
    id: 'cli-27',
    entry: 'cli',
    input: 'env file: a value of 128 KiB + 1',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '{envFile}'],
    envFile: `HUGE=${m('huge')}${'x'.repeat(128 * 1024 + 1)}\n`,
    expect: usage(/"HUGE": value is \d+ bytes; at most 131072 are allowed/, 'refused with the size and the limit'),
  },
  {
    id: 'cli-28',
    entry: 'cli',
    input: 'env file: 9 values of 120 KiB (total over 1 MiB)',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '{envFile}'],
    envFile: Array.from({ length: 9 }, (_, i) => `V${i}=${m(`total${i}`)}${'y'.repeat(120 * 1024)}`).join('\n'),
    expect: usage(/env vars total \d+ bytes \(keys \+ values\); at most 1048576 are allowed/, 'refused with the total and the limit'),
  },
  {
    id: 'cli-29',
    entry: 'cli',
    input: 'env file: 1025 variables',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '{envFile}'],
    envFile: Array.from({ length: 1025 }, (_, i) => `K${i}=v`).join('\n'),
    expect: usage(/1025 env vars; at most 1024 are allowed/, 'refused with the count and the limit'),
  },
  {
    id: 'cli-30',
    entry: 'cli',
    input: 'env file: a key of 256 characters',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '{envFile}'],
    envFile: `${'K'.repeat(256)}=${m('longkey')}\n`,
    expect: usage(/key is 256 bytes; at most 255 are allowed/, 'refused with the size and the limit'),
  },
  {
    id: 'cli-31',
    entry: 'cli',
    input: 'env file: empty',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '{envFile}'],
    envFile: '',
    expect: usage(/holds no variables/, 'refused: an empty env would wipe the CVM’s'),
  },
  {
    id: 'cli-32',
    entry: 'cli',
    input: 'env file: binary garbage',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '{envFile}'],
    envFile: `\u0000\u0001\u00ff${m('bin')}\u0007\n\u0000`,
    expect: usage(/holds no variables|invalid env vars/, 'refused; nothing echoed'),
  },
  {
    id: 'cli-33',
    entry: 'cli',
    input: '`--env-file` that does not exist',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '/nonexistent/dce.env'],
    expect: usage(/--env-file: cannot read \/nonexistent\/dce\.env \(ENOENT\)/, 'refused with the errno'),
  },
  {
    id: 'cli-34',
    entry: 'cli',
    input: '`--env-file` naming a directory',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '/tmp'],
    expect: usage(/--env-file: cannot read \/tmp \(EISDIR\)/, 'refused with the errno'),
  },
  {
    id: 'cli-35',
    entry: 'cli',
    input: '`--env-file -` with malformed lines on stdin',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '-'],
    stdin: `this is not a dotenv line\n${m('stdin')} also not\n`,
    expect: usage(/--env-file - \(stdin\) holds no variables/, 'refused; nothing echoed'),
  },
  {
    id: 'cli-36',
    entry: 'cli',
    input: '`--env-file -` with a bad key on stdin',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '-'],
    stdin: `OK=1\nBAD-KEY=${m('stdinkey')}\n`,
    expect: usage(/--env-file - \(stdin\): invalid env vars \(1 problem\)/, 'refused; key named, value not'),
  },
  {
    id: 'cli-37',
    entry: 'cli',
    input: '`--env-file -` with empty stdin',
    args: ['update', '--cvm', 'cvm-x', '--env-file', '-'],
    stdin: '',
    expect: usage(/--env-file - \(stdin\) holds no variables/, 'refused'),
  },
  {
    id: 'cli-38',
    entry: 'cli',
    input: '`use-tx` with `0x1234`',
    args: ['use-tx', 'cvm-x', '0x1234'],
    expect: usage(/transaction hash must be 0x followed by 64 hex digits/, 'refused before connecting'),
  },
  {
    id: 'cli-39',
    entry: 'cli',
    input: '`use-tx` with a pasted secret as the hash',
    args: ['use-tx', 'cvm-x', m('hash')],
    expect: usage(/transaction hash must be 0x followed by 64 hex digits/, 'refused; not echoed'),
  },
  {
    id: 'cli-40',
    entry: 'cli',
    input: '`status ../x`',
    args: ['status', '../x'],
    expect: usage(/the CVM or workflow id must be letters/, 'refused before connecting'),
  },
  {
    id: 'cli-41',
    entry: 'cli',
    input: 'unknown command that looks like `KEY=value`',
    args: [`API_TOKEN=${m('cmd')}`],
    expect: usage(/unknown command \(not shown\)/, 'refused; not echoed'),
  },
  {
    id: 'cli-42',
    entry: 'cli',
    input: '`retry` of a change that waits for a transaction',
    args: ['retry', '{waitingCvm}'],
    online: true,
    expect: {
      type: 'exit 1',
      message: /retry refused: not waiting for a retry: it waits for .*\(it takes: useTransaction, abort\)/,
      withinSeconds: 30,
      happens: 'refused by the workflow with its reason; the wait goes on',
    },
  },
  {
    id: 'cli-43',
    entry: 'cli',
    input: '`update` of a CVM whose change is running',
    args: ['update', '--cvm', '{waitingCvm}', '--env-file', '{envFile}'],
    envFile: `A=${m('second')}\n`,
    online: true,
    expect: {
      type: 'exit 1',
      message: /is already running \(workflow cvm-env-/,
      withinSeconds: 30,
      happens: 'refused: one change per CVM; names the running workflow',
    },
  },
  {
    id: 'cli-44',
    entry: 'cli',
    input: '`update` of a CVM the API does not know',
    args: ['update', '--cvm', 'cvm_corpus_no_such_cvm', '--env-file', '{envFile}'],
    envFile: `A=${m('nocvm')}\n`,
    online: true,
    expect: { type: 'exit 1', message: /404 not_found/, withinSeconds: 40, happens: 'the change fails at once with the API’s 404' },
  },
  {
    id: 'cli-45',
    entry: 'cli',
    input: '`abort` of a CVM with no change',
    args: ['abort', 'cvm_corpus_never_updated'],
    online: true,
    expect: {
      type: 'exit 1',
      message: /no env update found for cvm_corpus_never_updated/,
      withinSeconds: 30,
      happens: 'exit 1, names the id',
    },
  },
];

const CVM = 'cvm_corpus_input_only';
const ENV = { A: m('env') };

const client: ClientCase[] = [
  {
    id: 'client-01',
    entry: 'startEnvUpdate',
    input: '`cvmId: ""`',
    value: { cvmId: '', env: ENV },
    expect: { ...invalid(/cvmId is required/, ''), type: 'InvalidUpdateInputError', happens: 'thrown before anything starts' },
  },
  {
    id: 'client-02',
    entry: 'startEnvUpdate',
    input: '`cvmId: "../envs"`',
    value: { cvmId: '../envs', env: ENV },
    expect: { ...invalid(/cvmId must be a CVM id/, ''), type: 'InvalidUpdateInputError', happens: 'thrown before anything starts' },
  },
  {
    id: 'client-03',
    entry: 'startEnvUpdate',
    input: '`env: {}`',
    value: { cvmId: CVM, env: {} },
    expect: {
      ...invalid(/env: at least one variable is required/, ''),
      type: 'InvalidUpdateInputError',
      happens: 'thrown: an empty env would wipe the CVM’s',
    },
  },
  {
    id: 'client-04',
    entry: 'startEnvUpdate',
    input: 'a value that is a number',
    value: { cvmId: CVM, env: { A: 5, B: m('num') } },
    expect: { ...invalid(/env\.A must be a string/, ''), type: 'InvalidUpdateInputError', happens: 'thrown; names env.A' },
  },
  {
    id: 'client-05',
    entry: 'startEnvUpdate',
    input: 'a value of 128 KiB + 1',
    value: { cvmId: CVM, env: { BIG: `${m('big')}${'z'.repeat(128 * 1024 + 1)}` } },
    expect: {
      ...invalid(/"BIG": value is \d+ bytes; at most 131072/, ''),
      type: 'InvalidUpdateInputError',
      happens: 'thrown with the size and the limit',
    },
  },
  {
    id: 'client-06',
    entry: 'startEnvUpdate',
    input: '`confirmations: 0`',
    value: { cvmId: CVM, env: ENV, confirmations: 0 },
    expect: {
      ...invalid(/confirmations must be an integer from 1 to 256 \(got 0\)/, ''),
      type: 'InvalidUpdateInputError',
      happens: 'thrown, not after the transaction is mined',
    },
  },
  {
    id: 'client-07',
    entry: 'startEnvUpdate',
    input: '`confirmations: NaN`',
    value: { cvmId: CVM, env: ENV, confirmations: Number.NaN },
    expect: { ...invalid(/confirmations must be an integer from 1 to 256$/, ''), type: 'InvalidUpdateInputError', happens: 'thrown' },
  },
  {
    id: 'client-08',
    entry: 'startEnvUpdate',
    input: '`composeHashPolicy: "STRICT"`',
    value: { cvmId: CVM, env: ENV, composeHashPolicy: 'STRICT' },
    expect: {
      ...invalid(/composeHashPolicy must be 'strict', 'warn', 'off' \(lower case\)/, ''),
      type: 'InvalidUpdateInputError',
      happens: 'thrown; never treated as warn',
    },
  },
  {
    id: 'client-09',
    entry: 'startEnvUpdate',
    input: '`requestId: 5`',
    value: { cvmId: CVM, env: ENV, requestId: 5 },
    expect: { ...invalid(/requestId must be a string/, ''), type: 'InvalidUpdateInputError', happens: 'thrown' },
  },
  {
    id: 'client-10',
    entry: 'startEnvUpdate',
    input: '`waitForApplied: "yes"`',
    value: { cvmId: CVM, env: ENV, waitForApplied: 'yes' },
    expect: { ...invalid(/waitForApplied must be true or false/, ''), type: 'InvalidUpdateInputError', happens: 'thrown' },
  },
  {
    id: 'client-11',
    entry: 'startEnvUpdate',
    input: '`allowedKeys` holding a pasted `NAME=secret`',
    value: { cvmId: CVM, env: ENV, allowedKeys: ['A', `B=${m('allowed')}`] },
    expect: {
      ...invalid(/allowedKeys\[1\] is not a valid env name/, ''),
      type: 'InvalidUpdateInputError',
      happens: 'thrown; entry counted, not echoed',
    },
  },
  {
    id: 'client-12',
    entry: 'startEnvUpdate',
    input: 'unknown field `token`',
    value: { cvmId: CVM, env: ENV, token: m('field') },
    expect: {
      ...invalid(/token is not an input field \(known: cvmId, env/, ''),
      type: 'InvalidUpdateInputError',
      happens: 'thrown; field named, value not',
    },
  },
  {
    id: 'client-13',
    entry: 'startEnvUpdate',
    input: 'a CVM whose change is running, another requestId',
    value: { cvmId: '{waitingCvm}', env: ENV, requestId: 'corpus-other-request' },
    expect: {
      type: 'UpdateAlreadyRunningError',
      message: /an env update of CVM .* is already running \(workflow cvm-env-/,
      withinSeconds: 10,
      happens: 'thrown: one change per CVM',
    },
  },
  {
    id: 'client-15',
    entry: 'startEnvUpdate',
    input: 'three 127 KiB values of control characters: within the API’s limits, over one Temporal payload once JSON-encoded',
    value: { cvmId: CVM, env: { A: '\u0001'.repeat(127 * 1024), B: '\u0001'.repeat(127 * 1024), C: '\u0001'.repeat(127 * 1024) } },
    expect: {
      type: 'PayloadTooLargeError',
      message: /^env is \d+ bytes; encoded it needs \d+ bytes of one payload .*; the limit is 2097152/,
      withinSeconds: 10,
      happens: 'thrown before anything starts, with the env’s size, the encoded size and the limit',
    },
  },
  {
    id: 'client-14',
    entry: 'startEnvUpdate',
    input: 'a CVM the API does not know',
    value: { cvmId: 'cvm_corpus_unknown_client', env: ENV },
    expect: {
      type: 'ApiRejected',
      message: /404 not_found/,
      withinSeconds: 15,
      happens: 'starts; the change fails at once with the API’s 404',
    },
  },
];

const WF = { env: ENV };

const raw: RawStartCase[] = [
  {
    id: 'raw-01',
    entry: 'raw start',
    input: 'no argument at all',
    args: [],
    expect: invalid(/the input must be an object/, 'fails at once, no activity runs'),
  },
  { id: 'raw-02', entry: 'raw start', input: '`null`', args: [null], expect: invalid(/the input must be an object/, 'fails at once') },
  {
    id: 'raw-03',
    entry: 'raw start',
    input: 'a string',
    args: [m('str')],
    expect: invalid(/the input must be an object/, 'fails at once; not echoed'),
  },
  {
    id: 'raw-04',
    entry: 'raw start',
    input: 'a list',
    args: [[{ cvmId: CVM, ...WF }]],
    expect: invalid(/the input must be an object/, 'fails at once'),
  },
  {
    id: 'raw-05',
    entry: 'raw start',
    input: '`cvmId: ".."`',
    args: [{ cvmId: '..', ...WF }],
    expect: invalid(/cvmId must be a CVM id/, 'fails before the API is asked'),
  },
  {
    id: 'raw-06',
    entry: 'raw start',
    input: '`cvmId` holding a path and a secret',
    args: [{ cvmId: `../envs/${m('path')}`, ...WF }],
    expect: invalid(/cvmId must be a CVM id/, 'fails at once; the id is not echoed'),
  },
  {
    id: 'raw-07',
    entry: 'raw start',
    input: '`cvmId: 5`',
    args: [{ cvmId: 5, ...WF }],
    expect: invalid(/cvmId is required \(a string\)/, 'fails at once'),
  },
  { id: 'raw-08', entry: 'raw start', input: 'no `cvmId`', args: [{ ...WF }], expect: invalid(/cvmId is required/, 'fails at once') },
  { id: 'raw-09', entry: 'raw start', input: 'no `env`', args: [{ cvmId: CVM }], expect: invalid(/env is required/, 'fails at once') },
  {
    id: 'raw-10',
    entry: 'raw start',
    input: '`env` as a dotenv string',
    args: [{ cvmId: CVM, env: `A=${m('envstr')}` }],
    expect: invalid(/env is required: an object of KEY: value, or a list of \{key, value\}/, 'fails at once; not echoed'),
  },
  {
    id: 'raw-11',
    entry: 'raw start',
    input: '`env` list item without `value`',
    args: [{ cvmId: CVM, env: [{ key: 'A' }] }],
    expect: invalid(/value must be a string/, 'fails at once'),
  },
  {
    id: 'raw-12',
    entry: 'raw start',
    input: '`env` list with a duplicate key',
    args: [
      {
        cvmId: CVM,
        env: [
          { key: 'A', value: m('d1') },
          { key: 'A', value: m('d2') },
        ],
      },
    ],
    expect: invalid(/"A": duplicate key, first given at envs\[0\]/, 'fails at once; values not echoed'),
  },
  {
    id: 'raw-13',
    entry: 'raw start',
    input: 'unknown field `apiKey`',
    args: [{ cvmId: CVM, ...WF, apiKey: m('apikey') }],
    expect: invalid(/apiKey is not an input field/, 'fails at once; value not echoed'),
  },
  {
    id: 'raw-14',
    entry: 'raw start',
    input: 'unknown field whose name is a secret',
    args: [{ cvmId: CVM, ...WF, [m('fieldname')]: 1 }],
    expect: invalid(/\(a field whose name is not shown\) is not an input field/, 'fails at once; the name is not echoed'),
  },
  {
    id: 'raw-15',
    entry: 'raw start',
    input: '`confirmations: "3"` (a string)',
    args: [{ cvmId: CVM, ...WF, confirmations: '3' }],
    expect: invalid(/confirmations must be an integer from 1 to 256/, 'fails at once'),
  },
  {
    id: 'raw-16',
    entry: 'raw start',
    input: '`confirmations: 1e9`',
    args: [{ cvmId: CVM, ...WF, confirmations: 1e9 }],
    expect: invalid(/confirmations must be an integer from 1 to 256 \(got 1000000000\)/, 'fails at once, not after hours of waiting'),
  },
  {
    id: 'raw-17',
    entry: 'raw start',
    input: '`composeHashPolicy: "lenient"`',
    args: [{ cvmId: CVM, ...WF, composeHashPolicy: 'lenient' }],
    expect: invalid(/composeHashPolicy must be/, 'fails at once; never fails open'),
  },
  {
    id: 'raw-18',
    entry: 'raw start',
    input: '`requestId: "has a space"`',
    args: [{ cvmId: CVM, ...WF, requestId: 'has a space' }],
    expect: invalid(/requestId may hold only letters/, 'fails at once, not at phase 1'),
  },
  {
    id: 'raw-19',
    entry: 'raw start',
    input: '`allowedKeys: "A"` (not a list)',
    args: [{ cvmId: CVM, ...WF, allowedKeys: 'A' }],
    expect: invalid(/allowedKeys must be a list of env names/, 'fails at once'),
  },
  {
    id: 'raw-20',
    entry: 'raw start',
    input: 'a forged internal `resume` field',
    args: [{ cvmId: CVM, ...WF, resume: {} }],
    expect: invalid(/resume/, 'fails at once: only the workflow itself resumes'),
  },
  {
    id: 'raw-21',
    entry: 'raw start',
    input: 'four bad fields at once',
    args: [{ cvmId: '../x', ...WF, confirmations: 0, composeHashPolicy: 'STRICT', requestId: 'a b' }],
    expect: invalid(/invalid input \(4 problems\)/, 'fails at once; every problem listed'),
  },
];

const WRONG_HASH = `0x${'g'.repeat(64)}`;

const operator: OperatorCase[] = [
  // Updates: refused with the reason; the wait is untouched.
  {
    id: 'upd-01',
    entry: 'update',
    name: 'useTransaction',
    input: 'no argument',
    args: [],
    expect: refused(
      /^malformed hash: expected \{"transactionHash": "<0x followed by 64 hex digits>"\}, got nothing/,
      'refused; the wait goes on',
    ),
  },
  {
    id: 'upd-02',
    entry: 'update',
    name: 'useTransaction',
    input: '`null`',
    args: [null],
    expect: refused(/^malformed hash: .*got null/, 'refused'),
  },
  {
    id: 'upd-03',
    entry: 'update',
    name: 'useTransaction',
    input: 'a number',
    args: [5],
    expect: refused(/^malformed hash: .*got a number/, 'refused'),
  },
  {
    id: 'upd-04',
    entry: 'update',
    name: 'useTransaction',
    input: '`"0x12"`',
    args: ['0x12'],
    expect: refused(/^malformed hash: .*got a string of 4 characters/, 'refused'),
  },
  {
    id: 'upd-05',
    entry: 'update',
    name: 'useTransaction',
    input: '`{transactionHash: 5}`',
    args: [{ transactionHash: 5 }],
    expect: refused(/^malformed hash: .*transactionHash was a number/, 'refused'),
  },
  {
    id: 'upd-06',
    entry: 'update',
    name: 'useTransaction',
    input: 'a pasted secret as the hash',
    args: [{ transactionHash: m('paste') }],
    expect: refused(/^malformed hash: .*transactionHash was a string of \d+ characters/, 'refused; described by shape, not echoed'),
  },
  {
    id: 'upd-07',
    entry: 'update',
    name: 'useTransaction',
    input: 'wrong key `{hash: …}`',
    args: [{ hash: `0x${HEX64}` }],
    expect: refused(/^malformed hash: .*got an object with "hash"/, 'refused; names the key it got'),
  },
  {
    id: 'upd-08',
    entry: 'update',
    name: 'useTransaction',
    input: '63 hex digits',
    args: [{ transactionHash: `0x${HEX64.slice(1)}` }],
    expect: refused(/^malformed hash: .*a string of 65 characters/, 'refused'),
  },
  {
    id: 'upd-09',
    entry: 'update',
    name: 'useTransaction',
    input: '64 non-hex characters',
    args: [{ transactionHash: WRONG_HASH }],
    expect: refused(/^malformed hash: /, 'refused'),
  },
  {
    id: 'upd-10',
    entry: 'update',
    name: 'useTransaction',
    input: 'a good hash plus an unknown field',
    args: [{ transactionHash: `0x${HEX64}`, note: m('note') }],
    expect: refused(
      /^malformed argument: unknown field "note"; expected \{"transactionHash": "0x…"\}/,
      'refused; the extra value not echoed',
    ),
  },
  {
    id: 'upd-11',
    entry: 'update',
    name: 'useTransaction',
    input: 'a mined transaction that registers nothing',
    args: [{ transactionHash: '{unrelatedTx}' }],
    expect: {
      ...refused(
        /^this transaction does not register compose hash [0-9a-f]{64} on app 0x[0-9a-fA-F]{40}: /,
        'refused after the chain was asked; the wait goes on',
      ),
      withinSeconds: 20,
    },
  },
  {
    id: 'upd-12',
    entry: 'update',
    name: 'retry',
    input: 'no argument, while it waits for a transaction',
    args: [],
    expect: refused(/^not waiting for a retry: it waits for .*\(it takes: useTransaction, abort\)/, 'refused with what it waits for'),
  },
  {
    id: 'upd-13',
    entry: 'update',
    name: 'retry',
    input: '`{now: true}`',
    args: [{ now: true }],
    expect: refused(/^malformed argument: retry takes no argument, got an object with "now"/, 'refused'),
  },
  {
    id: 'upd-14',
    entry: 'update',
    name: 'retry',
    input: 'a string',
    args: [m('retry')],
    expect: refused(/^malformed argument: retry takes no argument, got a string of \d+ characters/, 'refused; not echoed'),
  },
  {
    id: 'upd-15',
    entry: 'update',
    name: 'abort',
    input: '`{reason: 5}`',
    args: [{ reason: 5 }],
    expect: refused(
      /^malformed argument: abort takes \{"reason": "<text>"\} or nothing, got reason as a number/,
      'refused; nothing is aborted',
    ),
  },
  {
    id: 'upd-16',
    entry: 'update',
    name: 'abort',
    input: '`[1, 2]`',
    args: [[1, 2]],
    expect: refused(/^malformed argument: .*got a list of 2/, 'refused; nothing is aborted'),
  },
  {
    id: 'upd-17',
    entry: 'update',
    name: 'abort',
    input: '`{reason, force: true}`',
    args: [{ reason: 'x', force: true }],
    expect: refused(/^malformed argument: unknown field "force"/, 'refused; nothing is aborted'),
  },
  {
    id: 'upd-18',
    entry: 'update',
    name: 'abort',
    input: 'a reason of 600 characters',
    args: [{ reason: 'r'.repeat(600) }],
    expect: refused(/^malformed argument: the reason has 600 characters, at most 500/, 'refused; nothing is aborted'),
  },
  {
    id: 'upd-19',
    entry: 'update',
    name: 'frobnicate',
    input: 'an Update name the workflow does not have',
    args: [],
    expect: {
      type: 'Error',
      message: /^No registered handler for update: frobnicate$/,
      withinSeconds: 10,
      happens: 'rejected by the workflow’s SDK; the wait goes on',
    },
  },
  // Signals: never throw; what cannot be used is ignored and said in status.lastError.
  {
    id: 'sig-01',
    entry: 'signal',
    name: 'useTransaction',
    input: 'no argument',
    args: [],
    expect: ignored(/^useTransaction ignored: malformed hash: .*got nothing/, 'ignored, said in the status; no workflow task fails'),
  },
  {
    id: 'sig-02',
    entry: 'signal',
    name: 'retry',
    input: 'no argument, while it waits for a transaction',
    args: [],
    expect: ignored(/^retry ignored: not waiting for a retry/, 'ignored, said in the status'),
  },
  {
    id: 'sig-03',
    entry: 'signal',
    name: 'useTransaction',
    input: '`null`',
    args: [null],
    expect: ignored(/^useTransaction ignored: malformed hash: .*got null/, 'ignored'),
  },
  {
    id: 'sig-04',
    entry: 'signal',
    name: 'useTransaction',
    input: 'a number',
    args: [42],
    expect: ignored(/^useTransaction ignored: malformed hash: .*got a number/, 'ignored'),
  },
  {
    id: 'sig-05',
    entry: 'signal',
    name: 'useTransaction',
    input: 'a pasted secret as the hash',
    args: [{ transactionHash: m('sigpaste') }],
    expect: ignored(/^useTransaction ignored: malformed hash: .*transactionHash was a string of \d+ characters/, 'ignored; not echoed'),
  },
  {
    id: 'sig-06',
    entry: 'signal',
    name: 'useTransaction',
    input: '`{hash: …}` (wrong key)',
    args: [{ hash: `0x${HEX64}` }],
    expect: ignored(/^useTransaction ignored: malformed hash: .*got an object with "hash"/, 'ignored'),
  },
  {
    id: 'sig-07',
    entry: 'signal',
    name: 'useTransaction',
    input: '`"0x1234"`',
    args: ['0x1234'],
    expect: ignored(/^useTransaction ignored: malformed hash: .*got a string of 6 characters/, 'ignored'),
  },
  {
    id: 'sig-08',
    entry: 'signal',
    name: 'retry',
    input: 'a string',
    args: [m('sigretry')],
    expect: ignored(/^retry ignored: not waiting for a retry/, 'ignored'),
  },
  {
    id: 'sig-09',
    entry: 'signal',
    name: 'useTransaction',
    input: 'a good hash plus an unknown field',
    args: [{ transactionHash: `0x${HEX64}`, extra: m('extra') }],
    expect: ignored(/^useTransaction ignored: malformed argument: unknown field "extra"/, 'ignored; the extra value not echoed'),
  },
  {
    id: 'sig-10',
    entry: 'signal',
    name: 'frobnicate',
    input: 'a signal name the workflow does not have',
    args: [{ x: m('unknown') }],
    expect: { type: 'ignored', message: /./, withinSeconds: 10, happens: 'buffered by the SDK, never fails a task; the wait goes on' },
  },
  // Last: an abort signal always aborts, even with a reason it cannot read.
  {
    id: 'sig-11',
    entry: 'signal',
    name: 'abort',
    input: 'a number as the reason',
    args: [42],
    expect: {
      type: 'Aborted',
      message: /aborted: aborted by an operator/,
      withinSeconds: 10,
      happens: 'aborts (an abort is never lost); the unreadable reason is dropped',
    },
  },
];

const hostile: HostileCase[] = [
  {
    id: 'api-01',
    entry: 'hostile API',
    input: 'a 64 MiB body for the CVM',
    cvm: { kms: 'phala' },
    rules: [{ route: 'GET /cvms/{id}', cvmId: '{cvm}', tamper: { hugeBodyBytes: 64 * 1024 * 1024 } }],
    expect: {
      type: 'ApiRejected',
      message: /body is larger than \d+ bytes/,
      withinSeconds: 15,
      happens: 'fails at once by size; nothing applied',
    },
  },
  {
    id: 'api-02',
    entry: 'hostile API',
    input: '`kms_info.chain_id: "eleven"`',
    cvm: { kms: 'onchain', app: 'own' },
    rules: [{ route: 'GET /cvms/{id}', cvmId: '{cvm}', tamper: { set: [{ path: 'kms_info.chain_id', value: 'eleven' }] } }],
    expect: {
      type: 'ApiRejected',
      message: /does not match the expected schema: kms_info\.chain_id/,
      withinSeconds: 15,
      happens: 'fails at once, naming the field',
    },
  },
  {
    id: 'api-03',
    entry: 'hostile API',
    input: 'a 2-byte KMS signature on the env key',
    cvm: { kms: 'onchain', app: 'own' },
    global: true,
    rules: [
      {
        route: 'GET /kms/{kms_id}/pubkey/{app_id}',
        tamper: {
          set: [
            { path: 'signature_v1', value: '0x1234' },
            { path: 'signature', value: '0x1234' },
          ],
        },
        times: 1,
      },
    ],
    expect: {
      type: 'ApiRejected',
      message: /unusable signature for the env encryption key.*signature must be 65 bytes, got 2/,
      withinSeconds: 10,
      happens: 'fails at once, not after minutes of retries',
    },
  },
  {
    id: 'api-04',
    entry: 'hostile API',
    input: 'a 465 naming another app',
    cvm: { kms: 'onchain', app: 'own' },
    rules: [
      {
        route: 'PATCH /cvms/{id}/envs',
        cvmId: '{cvm}',
        tamper: { set: [{ path: 'details.[field=app_id].value', value: '{foreignApp}' }] },
        times: 1,
      },
    ],
    expect: {
      type: 'ApiRejected',
      message: /refusing to register on another app/,
      withinSeconds: 15,
      happens: 'fails before any transaction is sent',
    },
  },
  {
    id: 'api-05',
    entry: 'hostile API',
    input: 'a 465 naming another chain',
    cvm: { kms: 'onchain', app: 'own' },
    rules: [
      {
        route: 'PATCH /cvms/{id}/envs',
        cvmId: '{cvm}',
        tamper: { set: [{ path: 'details.[field=kms_info].value.chain_id', value: 1 }] },
        times: 1,
      },
    ],
    expect: {
      type: 'ApiRejected',
      message: /refusing to register on another chain/,
      withinSeconds: 15,
      happens: 'fails before any transaction is sent',
    },
  },
  {
    id: 'api-06',
    entry: 'hostile API',
    input: '429 with `Retry-After: 1e9`, twice',
    cvm: { kms: 'phala' },
    rules: [{ route: 'PATCH /cvms/{id}/envs', cvmId: '{cvm}', rateLimit: { retryAfter: '1e9' }, times: 2 }],
    expect: {
      type: 'completes',
      message: /applied/,
      withinSeconds: 30,
      happens: 'garbage ignored, the default pause is used; the change completes',
    },
  },
  {
    id: 'api-07',
    entry: 'hostile API',
    input: '429 with `Retry-After: 99999999999` on the CVM read',
    cvm: { kms: 'phala' },
    rules: [{ route: 'GET /cvms/{id}', cvmId: '{cvm}', rateLimit: { retryAfter: '99999999999' }, times: 1 }],
    expect: { type: 'completes', message: /applied/, withinSeconds: 45, happens: 'the wait is capped at 30 s; the change completes' },
  },
  {
    id: 'api-08',
    entry: 'hostile API',
    input: '403 on the env submit',
    cvm: { kms: 'phala' },
    rules: [{ route: 'PATCH /cvms/{id}/envs', cvmId: '{cvm}', error: { status: 403 } }],
    expect: { type: 'ApiRejected', message: /403/, withinSeconds: 15, happens: 'fails at once; not retried' },
  },
  {
    id: 'api-09',
    entry: 'hostile API',
    input: 'the CVM’s `app_id` as a number',
    cvm: { kms: 'phala' },
    rules: [{ route: 'GET /cvms/{id}', cvmId: '{cvm}', tamper: { set: [{ path: 'app_id', value: 12345 }] } }],
    expect: {
      type: 'ApiRejected',
      message: /does not match the expected schema: app_id/,
      withinSeconds: 15,
      happens: 'fails at once, naming the field',
    },
  },
];

/** Every case, in the order the test runs them (the abort signal that ends the waiting change is last). */
export const CORPUS: readonly BadInputCase[] = [...cli, ...client, ...raw, ...hostile, ...operator];
