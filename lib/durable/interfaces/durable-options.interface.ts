import type { TaskContext } from '../../supervisor/interfaces/task.interface.js';

/**
 * `ConcurrencyModule.forRoot({ durable })`: tasks stored in Redis and run by BullMQ workers on any instance. Off
 * unless given; needs the optional peer `bullmq`.
 */
export interface DurableModuleOptions {
  /** A Redis URL (`redis://user:pass@host:6379/0`, `rediss://` for TLS) or ioredis options. */
  connection: string | object;
  /** Key prefix of every queue in Redis. Default `'nestjs-concurrency'`. Instances that share tasks share it. */
  prefix?: string;
  /** Running handlers per task name on this instance, unless the handler sets its own. Default 16. */
  concurrency?: number;
  /** `false`: this instance only starts tasks (an API-only node) and runs none. Default true. */
  workers?: boolean;
  /**
   * How long after its instance died (crash, SIGKILL, lost network) a running task is taken back and run again on
   * another instance, in ms. Default 30000. Lower is faster recovery but more Redis traffic (locks are renewed every
   * quarter of it) and a higher risk that a blocked event loop loses a lock and the task runs twice.
   */
  stalledTimeout?: number;
  /** How long `startChild()` and the other calls wait for Redis before rejecting, in ms. Default 2000. */
  storeTimeout?: number;
  /**
   * How long an idempotency key (`opts.id` of a start) is remembered after its first start, in ms: a start with the
   * same key within it is the same child, whether or not the finished child is still kept. Default 24 h.
   */
  idempotencyWindow?: number;
  /**
   * Finished children kept in Redis per task name, with their results (completed) or failure reasons (failed): at
   * most `count` of them, none older than `age` ms. Default `{ count: 10000, age: 24 h }` for both. An awaiter reads
   * the outcome of a child from there.
   */
  retention?: { completed?: DurableRetention; failed?: DurableRetention };
  /** The largest payload (and result), in bytes of its JSON. Default 1 MiB (1,048,576). */
  maxPayloadSize?: number;
  /**
   * How many times a running child is taken back after its instance stopped renewing its lock (crash, kill, an event
   * loop blocked past `stalledTimeout`) before it fails for good. Default 3.
   */
  maxStalls?: number;
}

/** How many finished children of a task name are kept, and for how long (ms). */
export interface DurableRetention {
  count?: number;
  age?: number;
}

/** `@TaskHandler(name, opts)`. */
export interface TaskHandlerOptions {
  /** Running handlers of this task on this instance. Default: the module's `durable.concurrency`. */
  concurrency?: number;
  /**
   * `'transient'` (default) runs a failed attempt again, up to `maxRestarts` times, `backoff` ms apart (doubling);
   * `'temporary'` runs once.
   */
  restart?: 'temporary' | 'transient';
  /** Restarts after failures (throw, rejection, timeout). Default 3. */
  maxRestarts?: number;
  /** ms before the first restart, doubled for each next one. Default 1000. */
  backoff?: number;
  /** ms per attempt; then `ctx.signal` is aborted with a `TaskTimeoutError` and the attempt fails. Default none. */
  timeout?: number;
}

/** What a `@TaskHandler` method receives as its second argument. */
export interface DurableTaskContext extends TaskContext {
  /**
   * Stores a progress value on the task (shown in Redis, e.g. by BullMQ dashboards). Rejects with a
   * `DurableUnavailableError` when Redis does not answer within `durable.storeTimeout`.
   */
  progress(value: number | object): Promise<void>;
}

/** Options of one durable start. */
export interface DurableChildOptions {
  /**
   * Idempotency key: starting the same task with the same id again within `durable.idempotencyWindow` (24 h) is
   * the same child (nothing new is stored; the ref says `duplicate: true`). Any non-empty string of up to 512
   * characters (it is encoded before it reaches Redis, so it can be user input).
   */
  id?: string;
  /** ms to wait before the task may run. */
  delay?: number;
  /** 1 (highest) to 2,097,152: among waiting tasks of one name, lower runs first. Default: none (first in, first out). */
  priority?: number;
}

/** What `DurableSupervisor.startChild()` resolves to once the child is stored. */
export interface DurableChildRef {
  readonly id: string;
  readonly task: string;
  /** true: a child with this `opts.id` was started before (within `durable.idempotencyWindow`): nothing new started. */
  readonly duplicate: boolean;
}

/** One child that has not finished yet, on any instance, as listed by `DurableSupervisor.children()`. */
export interface DurableChildInfo {
  id: string;
  task: string;
  status: 'waiting' | 'delayed' | 'running';
  /** The attempt that runs or will run next: 1, then 2 after the first failure, ... */
  attempt: number;
  /** When the running attempt started (only for `'running'`). */
  startedAt?: Date;
}

/** `durable` after validation, every default filled in. Internal: injected as part of `CONCURRENCY_OPTIONS`. */
export interface ResolvedDurableOptions {
  connection: string | object;
  prefix: string;
  concurrency: number;
  workers: boolean;
  stalledTimeout: number;
  storeTimeout: number;
  idempotencyWindow: number;
  retention: { completed: Required<DurableRetention>; failed: Required<DurableRetention> };
  maxPayloadSize: number;
  maxStalls: number;
}
