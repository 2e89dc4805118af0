import { errorMessage, describeValue, safeString } from '../utils/describe.js';

/** Message factories of the scheduling pattern, side by side. */
export const where = (className: string, method: string) => `${className}.${method}()`;

export const INVALID_CRON = (at: string, expression: unknown, cause: string) =>
  `Invalid cron expression ${JSON.stringify(safeString(expression))} on ${at}: ${cause}. ` +
  'Use 5 fields (minute hour day month weekday) or 6 with seconds first, e.g. "*/10 * * * * *", or a CronExpression.';

export const INVALID_MS = (at: string, kind: 'interval' | 'timeout', ms: unknown) =>
  kind === 'interval'
    ? `Invalid interval ${safeString(ms)} on ${at}: expected a positive, finite number of milliseconds, e.g. @Interval(1000).`
    : `Invalid timeout ${safeString(ms)} on ${at}: expected a finite number of milliseconds >= 0, e.g. @Timeout(1000).`;

export const INVALID_OPTION = (at: string, option: string, expected: string, got: unknown) =>
  `Invalid job option "${option}" on ${at}: expected ${expected}, got ${describeValue(got)}.`;

export const NO_LOCK = (at: string) =>
  `${at} asks for lock: true but no lock store is configured. ` +
  'Pass one in ConcurrencyModule.forRoot({ jobs: { lock: new RedisJobLock(redis) } }) or in lock: { store }.';

export const LOCK_FIXED_DELAY = (at: string) =>
  `${at} combines lock with mode: 'fixed-delay', which has no shared tick: each instance waits from the end of its ` +
  "own run, so the instances' ticks never line up and a lock cannot pick one per tick. Use mode: 'fixed-rate' (ticks " +
  'on a grid shared by every instance) or a @Cron, or drop lock.';

export const DUPLICATE_JOB = (name: string, first: string, second: string) =>
  `Duplicate job name "${name}" on ${first} and ${second}. Give each job a unique name option.`;

export const DUPLICATE_IN_SCHEDULER = (name: string, at: string) =>
  `Job "${name}" on ${at} clashes with a job of the same name already in @nestjs/schedule's SchedulerRegistry. ` +
  'Give it a unique name option.';

export const REQUEST_SCOPED = (className: string, method: string) =>
  `Cannot schedule ${where(className, method)}: ${className} is request-scoped (or depends on a request-scoped ` +
  'provider), so there is no instance to run the job on outside a request. Move the job to a singleton provider ' +
  'and inject what it needs there (e.g. through ModuleRef.resolve()).';

const knownList = (known: string[]) => (known.length ? known.map((n) => JSON.stringify(n)).join(', ') : '(none)');

export const UNKNOWN_JOB = (name: string, known: string[]) =>
  `No job named "${name}". Known jobs: ${knownList(known)}.`;

export const JOB_SWITCHED_OFF = (name: string, option: string, known: string[]) =>
  `Job "${name}" is not scheduled on this instance: ${option} is false. Set it to true (or leave it out) on the ` +
  `instances that should run it. Known jobs: ${knownList(known)}.`;

export const ALREADY_RUNNING = (name: string) =>
  `Job "${name}" is already running and does not allow overlapping runs (overlap: 'skip'); this run was skipped. ` +
  "Wait for the run to end, or set overlap: 'allow'.";

export const JOB_FAILED = (name: string) => `Job "${name}" failed`;
export const JOB_SKIPPED_OVERLAP = (name: string, at: Date) =>
  `Job "${name}" skipped the tick of ${at.toISOString()}: the previous run is still going (overlap: 'skip').`;
export const JOB_SKIPPED_CLUSTER_OVERLAP = (name: string, at: Date) =>
  `Job "${name}" skipped the tick of ${at.toISOString()}: a run is still going on another instance (overlap: 'skip').`;
export const LOCK_FAILED = (name: string, at: Date, error: unknown) =>
  `Job "${name}" skipped the tick of ${at.toISOString()}: the lock store failed (${errorMessage(error)}). ` +
  'The tick is not run rather than risk running it twice.';
export const LEASE_LOST = (name: string, at: Date) =>
  `Job "${name}" (tick ${at.toISOString()}) could not extend its lease: another instance may take the tick. ` +
  'The run goes on; its fencing token lets your writes reject the stale owner.';
export const RUN_LEASE_LOST = (name: string, cancelled = false) =>
  `Job "${name}" could not extend its running lease: another instance may start a run before this one ends. ` +
  (cancelled ? "The run is cancelled (overlap 'cancel-previous')." : 'The run goes on.');

export const CATCH_UP_NO_LOCK = (at: string) =>
  `${at} sets catchUp but has no lock: catching up needs a lock store, which keeps the job's last run tick and lets ` +
  'each missed tick run once across instances. Add lock: true with ConcurrencyModule.forRoot({ jobs: { lock: new ' +
  'RedisJobLock(redis) } }) (survives restarts) or new InMemoryJobLock() (covers stalls only), or drop catchUp.';
export const CATCH_UP_KIND = (at: string, what: string) =>
  `Invalid job option "catchUp" on ${at}: ${what} has no tick shared by the instances to catch up. Use a @Cron or a ` +
  'fixed-rate @Interval, or drop catchUp.';
export const STORE_LACKS = (at: string, option: string, method: string) =>
  `Job option "${option}" on ${at} needs a lock store with ${method}() (RedisJobLock and InMemoryJobLock have it); ` +
  'the configured store has none. Use one of those, add the method to your JobLock, or drop the option.';
export const CATCH_UP_STARTED = (name: string, ticks: Date[], mode: string) =>
  `Job "${name}" catches up on ${ticks.length} missed tick(s) (catchUp mode '${mode}'): ` +
  ticks.map((t) => t.toISOString()).join(', ');
export const CATCH_UP_TRUNCATED = (name: string, dropped: number, max: number) =>
  `Job "${name}" missed more ticks than catchUp runs at once: the ${dropped} oldest are skipped, the latest ${max} run.`;
export const CATCH_UP_FAILED = (name: string, error: unknown) =>
  `Job "${name}" could not read its last run tick from the lock store (${errorMessage(error)}): no catch-up this time.`;
export const RECORD_TICK_FAILED = (name: string, error: unknown) =>
  `Job "${name}" could not record its last run tick in the lock store (${errorMessage(error)}): after a restart, ` +
  'catch-up may run this tick again.';
export const CANCEL_WAIT_EXPIRED = (name: string, at: Date, ms: number) =>
  `Job "${name}" skipped the tick of ${at.toISOString()}: the run it cancelled (overlap: 'cancel-previous') did not ` +
  `end within the job's timeout (${ms} ms). Make the method honour ctx.signal.`;
export const PAUSED_AFTER_FAILURES = (name: string, n: number) =>
  `Job "${name}" paused itself after ${n} consecutive failed runs (pauseAfterFailures: ${n}). ` +
  `Fix the cause, then call JobRegistry.resume(${JSON.stringify(name)}).`;
// Run history, cluster-wide control and schedules from configuration.
export const HISTORY_STORE_FAILED = (job: string, cause: string) =>
  `Could not store a run of job "${job}" in the lock store's history (${cause}). The run is kept in this ` +
  "instance's history; further failures are not logged until the store answers again.";
export const HISTORY_STORE_RECOVERED = () => 'The lock store stores the job history again.';
export const CONTROL_READ_FAILED = (cause: string) =>
  `Could not read the jobs' shared state (pause, schedules) from the lock store (${cause}). This instance keeps its ` +
  'current state and retries every poll; further failures are not logged until the store answers again.';
export const CONTROL_WRITE_FAILED = (job: string, cause: string) =>
  `Could not store the pause state of job "${job}" in the lock store (${cause}): it applies to this instance only ` +
  'until the store answers; it is retried every poll.';
export const CONTROL_SUPERSEDED = (job: string, paused: boolean) =>
  `The ${paused ? 'pause()' : 'resume()'} of job "${job}" on this instance could not be stored in time, and another ` +
  `instance stored a later pause()/resume() of it meanwhile: that later call wins, and applies here too.`;
export const INVALID_HISTORY_LIMIT = (job: string, limit: unknown) =>
  `Invalid option "limit" of JobRegistry.history("${job}"): expected a positive integer, got ${describeValue(limit)}.`;
export const UNKNOWN_OVERRIDE = (job: string, known: string[]) =>
  `Invalid ConcurrencyModule option "jobs.overrides": no job named ${JSON.stringify(job)}. Known jobs: ` +
  `${knownList(known)}. Fix the name, or remove the override.`;
export const OVERRIDE_KIND = (job: string, option: string, kind: string) =>
  `Invalid ConcurrencyModule option "jobs.overrides[${JSON.stringify(job)}].${option}": job ${JSON.stringify(job)} ` +
  `is ${kind === 'timeout' ? 'a @Timeout' : kind === 'cron' ? 'a @Cron' : 'an @Interval'} job; ` +
  (kind === 'cron'
    ? 'give it cron (and timeZone), not interval.'
    : kind === 'interval'
      ? 'give it interval, not cron or timeZone.'
      : 'only disabled applies to it.');
export const OVERRIDE_INVALID = (job: string, option: string, value: unknown, cause: string) =>
  `Invalid ConcurrencyModule option "jobs.overrides[${JSON.stringify(job)}].${option}": ${cause} (got ` +
  `${describeValue(value)}). Use 5 fields (minute hour day month weekday) or 6 with seconds first, e.g. ` +
  '"*/10 * * * * *", and an IANA time zone such as "Europe/Paris".';
export const RESCHEDULE_INVALID = (job: string, kind: string, value: unknown, cause?: string) =>
  `Cannot reschedule job "${job}" to ${describeValue(value)}: ` +
  (kind === 'cron'
    ? `it is a @Cron job and takes a valid cron expression${cause ? ` (${cause})` : ''}, e.g. "*/10 * * * * *".`
    : kind === 'interval'
      ? 'it is an @Interval job and takes a positive, finite number of milliseconds, e.g. 5000.'
      : 'a @Timeout job runs once and has no schedule to change.');
export const RESCHEDULE_IGNORED = (job: string, cause: string) =>
  `Job "${job}" kept its schedule: the schedule another instance stored for it does not apply here (${cause}).`;
export const CONTROL_TOO_LATE = (job: string) =>
  `The change of job "${job}" reached Redis after its deadline (the caller had given up on it), so Redis did not ` +
  'apply it. Check Redis latency, and try again.';
