// Prints the bad-input corpus (test/bad-input/corpus.ts) as a markdown table: entry point,
// input, what happens. The release note's table is this output, so it always matches what
// test/bad-input-corpus.test.ts runs.
//
//   npm run corpus:table
import { CORPUS, type BadInputCase } from '../test/bad-input/corpus.ts';

/** Table-safe: no line breaks, and pipes escaped. */
function cell(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').replace(/\|/g, '\\|');
}

function entry(c: BadInputCase): string {
  if (c.entry === 'signal' || c.entry === 'update') return `${c.entry} \`${c.name}\``;
  return c.entry;
}

function outcome(c: BadInputCase): string {
  const { type, happens, withinSeconds } = c.expect;
  const kind = type === 'completes' ? 'completes' : type === 'ignored' ? 'ignored (status `lastError`)' : `\`${type}\``;
  return `${happens} — ${kind}, within ${withinSeconds} s`;
}

const lines = [
  `Bad-input corpus: ${CORPUS.length} cases, each run against the local stack by test/bad-input-corpus.test.ts.`,
  '',
  '| # | entry point | input | what happens |',
  '| --- | --- | --- | --- |',
  ...CORPUS.map((c) => `| ${c.id} | ${cell(entry(c))} | ${cell(c.input)} | ${cell(outcome(c))} |`),
];
process.stdout.write(`${lines.join('\n')}\n`);
