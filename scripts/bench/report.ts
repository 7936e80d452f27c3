// The fleet's figures, for the table and the JSON line.
import type { ScenarioRun } from './fleet.ts';
import type { Floor } from './floor.ts';
import { ms, quantile, round, table } from './stats.ts';

export interface ScenarioFigures {
  updates: number;
  succeeded: number;
  failed: number;
  /** Failure reason → count. */
  failures: Record<string, number>;
  registrationsMined: number;
  distinctRegistrations: number;
  /** Apps in the scenario: the registrations it needs. */
  expectedRegistrations: number;
  signed: number;
  wallMs: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  singleWallMs: number | null;
  /** wallMs / singleWallMs. */
  ratio: number | null;
  /** Peak RSS of the process that ran the updates: the worker, or the baseline's backend process. */
  workerPeakRssMb: number | null;
}

export function scenarioFigures(run: ScenarioRun, singleWallMs: number | null, expectedRegistrations: number): ScenarioFigures {
  const failed = run.updates - run.succeeded;
  return {
    updates: run.updates,
    succeeded: run.succeeded,
    failed,
    failures: run.failures,
    registrationsMined: run.registrations.mined,
    distinctRegistrations: run.registrations.distinct,
    expectedRegistrations,
    signed: run.signed,
    wallMs: round(run.wallMs),
    p50Ms: round(quantile(run.perUpdateMs, 0.5)),
    p95Ms: round(quantile(run.perUpdateMs, 0.95)),
    singleWallMs: singleWallMs === null ? null : round(singleWallMs),
    ratio: singleWallMs === null ? null : round(run.wallMs / singleWallMs, 2),
    workerPeakRssMb: run.peakRssMb,
  };
}

const v = (x: number | null | undefined, suffix = '') => (x === null || x === undefined ? '—' : `${x}${suffix}`);

/** Our service and the SDK baseline, one row per figure. */
export function sideBySide(fleet: ScenarioFigures, baseline: ScenarioFigures | undefined): string[] {
  const row = (label: string, f: (s: ScenarioFigures) => string) => [label, f(fleet), baseline ? f(baseline) : 'not run'];
  return table(
    ['', 'durable-cvm-envs', '@phala/cloud + viem inline'],
    [
      row('updates', (s) => String(s.updates)),
      row('succeeded / failed', (s) => `${s.succeeded} / ${s.failed}`),
      row('registrations needed (apps)', (s) => String(s.expectedRegistrations)),
      row('ComposeHashAdded mined', (s) => String(s.registrationsMined)),
      row('  distinct (app, hash)', (s) => String(s.distinctRegistrations)),
      row('transactions signed', (s) => String(s.signed)),
      row('wall time (ms)', (s) => ms(s.wallMs)),
      row('per update p50 / p95 (ms)', (s) => `${ms(s.p50Ms)} / ${ms(s.p95Ms)}`),
      row('one update alone (ms)', (s) => ms(s.singleWallMs)),
      row('wall / one update', (s) => v(s.ratio, '×')),
      row('peak RSS of the updating process (MB)', (s) => v(s.workerPeakRssMb)),
    ],
  );
}

export function floorTable(single: { ours: number; baseline: number | null }, floor: Floor): string[] {
  const over = (x: number | null) => (x === null ? '—' : `${(x / floor.floorMs).toFixed(2)}×`);
  return [
    ...table(
      ['floor of one on-chain update', 'ms'],
      [
        ['API round trips (7 calls, measured)', ms(floor.apiRoundTripsMs)],
        ['wait for the next block (observed)', ms(floor.nextBlockWaitMs)],
        ['remaining confirmation blocks', ms(floor.remainingConfirmationsMs)],
        ['simulator apply delay', ms(floor.applyDelayMs)],
        ['floor', ms(floor.floorMs)],
      ],
    ),
    '',
    ...table(
      ['one on-chain update alone', 'measured ms', 'measured / floor'],
      [
        ['durable-cvm-envs', ms(single.ours), over(single.ours)],
        ['@phala/cloud + viem inline', ms(single.baseline), over(single.baseline)],
      ],
    ),
  ];
}
