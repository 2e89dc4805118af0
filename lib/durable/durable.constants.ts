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
/** How many times a task whose instance died is taken back before it counts as failed (`durable.maxStalls`). */
export const DEFAULT_MAX_STALLS = 3;
/** How long finished tasks (and their results or failure reasons) are kept by default: ms, count per task name. */
export const DEFAULT_RETENTION = { age: 24 * 3600_000, count: 10_000 };
/** How long an idempotency key (`opts.id`) is remembered after its first start, by default: 24 h. */
export const DEFAULT_IDEMPOTENCY_WINDOW = 24 * 3600_000;
/** The largest payload or result, in bytes of JSON, by default: 1 MiB (Redis itself takes up to 512 MB). */
export const DEFAULT_MAX_PAYLOAD_SIZE = 1024 * 1024;
/** Redis key suffix (after the prefix) of the idempotency records: `<prefix>:~idem:<task>:<job id>`. */
export const IDEMPOTENCY_KEY = '~idem';
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
