/** Metadata key of `@TaskHandler`. */
export const TASK_HANDLER_METADATA = 'nestjs-concurrency:task-handler';
/** The `supervisor` field of durable `SupervisorEvent`s. */
export const DURABLE_SUPERVISOR = 'durable';

export const DEFAULT_DURABLE_PREFIX = 'nestjs-concurrency';
export const DEFAULT_DURABLE_CONCURRENCY = 16;
export const DEFAULT_STALLED_TIMEOUT = 30_000;
export const DEFAULT_DURABLE_STORE_TIMEOUT = 2000;
export const DEFAULT_DURABLE_MAX_RESTARTS = 3;
export const DEFAULT_DURABLE_BACKOFF = 1000;
/** How many times a task whose instance died is taken back before it counts as failed. */
export const MAX_STALLS = 3;
/** How long finished tasks (and so their results and idempotency keys) are kept: seconds, count per task name. */
export const KEEP_FINISHED = { age: 24 * 3600, count: 10_000 };
/** The backoff strategy name stored on each job; computed by the worker from the handler's options. */
export const BACKOFF_TYPE = 'nestjs-concurrency';
/** `attempts` of a job whose handler this instance does not know: the worker caps it with the handler's policy. */
export const UNKNOWN_HANDLER_ATTEMPTS = 1000;
/** Name of the custom events the workers add to a queue's event stream (failures, restarts). */
export const DURABLE_EVENT = 'nestjs-concurrency';
/** Injection token of the loaded `bullmq` module (undefined without `durable`). Internal. */
export const DURABLE_BULLMQ = Symbol('DURABLE_BULLMQ');
/** Redis key suffix (after the prefix) of the set of task names ever started or handled: `children()` reads it. */
export const TASKS_KEY = '~tasks';
/** Redis pub/sub channel suffix of terminate requests. */
export const TERMINATE_CHANNEL = '~terminate';
/** The Queue whose connection the supervisor uses for its own keys (it stores no jobs). */
export const CONTROL_QUEUE = '~control';
