/** Injection token of the validated options (`ResolvedConcurrencyOptions`). Internal. */
export const CONCURRENCY_OPTIONS = Symbol('CONCURRENCY_OPTIONS');

export const DEFAULT_SHUTDOWN_TIMEOUT = 5000;
export const DEFAULT_SUPERVISOR = 'default';
/** The supervisor scheduled jobs run under; configurable like any other (`supervisors: { jobs: { ... } }`). */
export const JOBS_SUPERVISOR = 'jobs';
export const DEFAULT_MAX_RESTARTS = 3;
export const DEFAULT_MAX_SECONDS = 5;
export const DEFAULT_FAN_OUT_CONCURRENCY = 16;
export const DEFAULT_TASK_TIMEOUT = 5000;
export const DEFAULT_CACHE_TTL = 5000;
export const DEFAULT_CACHE_MAX_ENTRIES = 10_000;
export const DEFAULT_STORE_TIMEOUT = 500;
