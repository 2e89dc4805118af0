/**
 * Metadata keys of `@Cron`, `@Interval` and `@Timeout`. Our own, so `@nestjs/schedule`'s explorer does not schedule
 * these methods a second time.
 */
export const JOB_METADATA = 'nestjs-concurrency:job';

export const DEFAULT_LOCK_TTL = 60_000;
/** Runs kept per job (`jobs.history`). */
export const DEFAULT_JOB_HISTORY = 50;
export const DEFAULT_LOCK_TIMEOUT = 1_000;
/** A lease is extended when this fraction of its TTL has passed and the run still goes. */
export const LOCK_EXTEND_RATIO = 0.5;

/**
 * Injection token, internal: `false` leaves every job's timer unarmed at bootstrap (the testing kit's
 * `ConcurrencyTestingModule`, whose `ConcurrencyTester` runs the ticks on its own clock). Absent: armed.
 */
export const ARM_JOBS_AT_BOOT = Symbol('ARM_JOBS_AT_BOOT');

/** The values of `overlap` (a job's option and `jobs.overlap`). */
export const OVERLAP_POLICIES: readonly string[] = ['skip', 'allow', 'buffer-one', 'cancel-previous'];
export const OVERLAP_EXPECTED = `'skip', 'allow', 'buffer-one' or 'cancel-previous'`;

/** catch-up: at most this many missed ticks run at once (`mode: 'all'`); older ones are skipped, with a warning. */
export const CATCH_UP_MAX_TICKS = 1000;
/** catch-up: how soon an instance tries again when another one held the catch-up or the lock store failed. */
export const CATCH_UP_RETRY_MS = 1000;

/** How often an instance asks the lock store whether a buffered or cancelling tick may run (cluster-wide policies). */
export const POLICY_POLL_MS = 100;
