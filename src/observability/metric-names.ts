// Our metric names, shared by the code that records them, the alert rules, the dashboard
// and the tests. The exporter prefixes only the SDK's own metrics (temporal_*), not these.
export const METRICS = {
  updatesStarted: 'cvm_env_updates_started',
  updatesFinished: 'cvm_env_updates_finished',
  phaseDuration: 'cvm_env_update_phase_duration_seconds',
  operatorWaits: 'cvm_env_operator_waits',
  awaitingOperator: 'cvm_env_updates_awaiting_operator',
  registrationTransactions: 'cvm_env_registration_transactions',
  apiErrors: 'cvm_env_api_errors',
} as const;

/** Phase durations reach from a second (an API call) to days (an operator), in seconds. */
export const PHASE_DURATION_BUCKETS = [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900, 3600, 14_400, 86_400, 259_200];
