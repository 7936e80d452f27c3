import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseEnvVars as sdkParseEnvVars } from '@phala/cloud';
import { parseEnvVars } from './dotenv.ts';

const PEM = [
  '-----BEGIN PRIVATE KEY-----',
  'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7',
  'aXrwS1Zz5y0yJ0+Q/9w==',
  '-----END PRIVATE KEY-----',
].join('\n');

const CORPUS: string[] = [
  '',
  'A=1',
  'A=1\nB=2\n',
  'export A=1',
  'export   A = 1',
  'export\tA=1',
  'export=1',
  'exporter=1',
  'export A',
  'export\nA=1',
  'A: 1',
  'A:1',
  'A:\n1',
  'A :1',
  'A = spaced value   ',
  'A=  leading',
  'A="double"',
  "A='single'",
  'A=`backtick`',
  'A="a\\nb\\rc"',
  "A='a\\nb'",
  'A=`a\\nb`',
  'A=a\\nb',
  'A="multi\nline\nvalue"',
  `PRIVATE_KEY="${PEM}"`,
  `PRIVATE_KEY='${PEM}'`,
  `PRIVATE_KEY=${PEM}`,
  'A=1 # comment',
  'A=1#no-space',
  'A="1 # not a comment"',
  "A='1 # not a comment' # comment",
  '# whole line comment\nA=1',
  '  # indented comment\nA=1',
  'A=1\r\nB=2\r\n',
  'A="x\r\ny"',
  'A=1\rB=2',
  'A=',
  'A=\nB=2',
  'A=""',
  "A=''",
  'A= # only comment',
  'A=1\nA=2',
  'A=1\nB=2\nA=3',
  'B=1\nA=2\nB=3',
  'A="say \\"hi\\""',
  "A='it\\'s'",
  "A='abc\\'\nB=1",
  'A="unterminated\nB=2',
  "A='x' y",
  'A="x" "y"',
  'A = 1',
  'A  =  1',
  'A\n=1',
  'no equals here',
  'JUST_A_KEY',
  'A=1\nnot a line\nB=2',
  'A.B-C=1',
  'a-b.c=1',
  '1=one\n0=zero\nZ=z\n10=ten\n01=lead',
  '4294967294=a\n4294967295=b\nX=1',
  '__proto__=x\nA=1',
  'constructor=x\ntoString=y',
  'A=a=b=c',
  'A=\'"mixed"\'',
  'A="\'mixed\'"',
  'A=\u00a0nbsp\u00a0',
  'A=x\u2028B=y',
  '\ufeffA=bom',
  'A="line1\\nline2"\nB=plain\\n',
  'A="a"\n"b"',
  'A="#hash"',
  'A=#',
  'A=\\',
  'A="\\\\"',
  "A='\\\\'",
  'A="a\\\\"b"',
  '\n\n\nA=1\n\n\n',
  '   \t A=1',
  'A=1 \t ',
  'A="  padded  "',
  'A= "leading space quote"',
  'A:  "colon quoted"',
  'A=`mix \'of\' "quotes"`',
  'A="\u00e9\u4e2d\ud83d\ude00"',
];

test('matches the official SDK on the hard-case corpus', () => {
  for (const input of CORPUS) {
    assert.deepEqual(parseEnvVars(input), sdkParseEnvVars(input), `input ${JSON.stringify(input)}`);
  }
});

test('documented dotenv behaviour', () => {
  assert.deepEqual(parseEnvVars('export A="x\\ny" # c\nB: \'z\'\n'), [
    { key: 'A', value: 'x\ny' },
    { key: 'B', value: 'z' },
  ]);
  assert.deepEqual(parseEnvVars(`K="${PEM}"`), [{ key: 'K', value: PEM }]);
  // A later duplicate wins, but stays where the first one was.
  assert.deepEqual(parseEnvVars('A=1\nB=2\nA=3'), [
    { key: 'A', value: '3' },
    { key: 'B', value: '2' },
  ]);
  assert.deepEqual(parseEnvVars("A='a\\nb'"), [{ key: 'A', value: 'a\\nb' }]);
});

// Deterministic so a failure can be replayed; the seed is printed in the assertion message.
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const ATOMS = [
  'A',
  'B',
  'k',
  '_',
  '1',
  '0',
  '.',
  '-',
  'x',
  'n',
  'r',
  '=',
  '=',
  ':',
  ' ',
  ' ',
  '\t',
  '\n',
  '\n',
  '\r',
  '\r\n',
  "'",
  '"',
  '`',
  '\\',
  '\\n',
  '#',
  'export ',
  'export',
  '\u2028',
  '\u00a0',
  '\u00e9',
];

function randomText(next: () => number): string {
  const len = Math.floor(next() * 30);
  let out = '';
  for (let i = 0; i < len; i++) out += ATOMS[Math.floor(next() * ATOMS.length)];
  return out;
}

// Line-shaped inputs reach deeper into the quoting logic than uniform noise.
function randomLines(next: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)] as T;
  const lines: string[] = [];
  const count = 1 + Math.floor(next() * 5);
  for (let i = 0; i < count; i++) {
    const q = pick(['', '', "'", '"', '`']);
    const close = next() < 0.8 ? q : pick(['', "'", '"', '`']);
    const value = randomText(next).slice(0, 12);
    const tail = pick(['', '', ' # c', '#c', ' x', ' ', '\\']);
    lines.push(
      `${pick(['', '', 'export ', ' ', '\t'])}${pick(['A', 'B', 'A_1', 'a.b', '0', 'export'])}${pick(['=', '=', ' = ', ': ', ':', '\n='])}${q}${value}${close}${tail}`,
    );
  }
  return lines.join(pick(['\n', '\r\n', '\n\n', '\r']));
}

test('seeded fuzz: identical to the official SDK', () => {
  const SEED = 20240607;
  const next = rng(SEED);
  const N = 6000;
  for (let i = 0; i < N; i++) {
    const input = i % 2 === 0 ? randomText(next) : randomLines(next);
    assert.deepEqual(parseEnvVars(input), sdkParseEnvVars(input), `seed ${SEED} case ${i}: ${JSON.stringify(input)}`);
  }
});
