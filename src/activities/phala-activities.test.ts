import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPLY_POLL_MIN_MS, applyPollDelayMs } from './phala-activities.ts';

/** The times (ms after the watch began) at which the watcher polls, for a watch of `untilMs`. */
function pollTimes(untilMs: number, maxMs: number): number[] {
  const times = [0];
  for (let t = 0; ;) {
    t += applyPollDelayMs(t, maxMs);
    if (t > untilMs) return times;
    times.push(t);
  }
}

test('apply polling starts at the short pause', () => {
  assert.equal(applyPollDelayMs(0, 1000), APPLY_POLL_MIN_MS);
  assert.equal(applyPollDelayMs(500, 1000), APPLY_POLL_MIN_MS);
});

test('apply polling backs off with the time waited and never exceeds the configured interval', () => {
  let previous = 0;
  for (let elapsed = 0; elapsed <= 60_000; elapsed += 50) {
    const d = applyPollDelayMs(elapsed, 1000);
    assert.ok(d >= previous, `the pause never shrinks (${elapsed} ms: ${d} < ${previous})`);
    assert.ok(d >= APPLY_POLL_MIN_MS && d <= 1000, `${d} ms at ${elapsed} ms`);
    previous = d;
  }
  assert.equal(applyPollDelayMs(8_000, 1000), 1000);
  assert.equal(applyPollDelayMs(3_600_000, 1000), 1000);
});

test('apply polling: an apply of about 1.5 s is seen within 0.2 s, at a bounded request count', () => {
  const times = pollTimes(1_500, 1000);
  const seenAt = pollTimes(10_000, 1000).find((t) => t >= 1_500)!;
  assert.ok(seenAt - 1_500 <= 200, `seen ${seenAt - 1_500} ms late`);
  assert.ok(times.length <= 12, `${times.length} polls in the first 1.5 s`);
});

test('apply polling: a long apply costs about what polling once a second does', () => {
  const adaptive = pollTimes(120_000, 1000).length;
  const fixed = 120_000 / 1000 + 1;
  assert.ok(adaptive <= fixed + 30, `${adaptive} polls in 2 min against ${fixed} at a fixed second`);
  // Late in the watch the pause is the configured interval again.
  const late = pollTimes(120_000, 1000).slice(-3);
  assert.deepEqual([late[1]! - late[0]!, late[2]! - late[1]!], [1000, 1000]);
});

test('apply polling: a configured interval below the short pause is honoured', () => {
  assert.equal(applyPollDelayMs(0, 50), 50);
  assert.equal(applyPollDelayMs(10_000, 50), 50);
});
