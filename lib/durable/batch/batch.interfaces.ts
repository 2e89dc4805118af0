/** Options of `DurableSupervisor.map()`, `settle()` and `batch()`. */
export interface DurableBatchOptions {
  /** At most this many items of the batch run at once across the whole cluster (not per instance). Default: no limit. */
  concurrency?: number;
  /**
   * Idempotency key of the batch: the same id returns the same batch and stores no item twice (until the finished
   * batch's record expires, `durable.retention.completed.age`). Any non-empty string of up to 256 characters.
   */
  id?: string;
  /** ms per attempt of each item; then its `ctx.signal` aborts with a `TaskTimeoutError`. Default: the handler's. */
  timeout?: number;
  /** Aborting it cancels the batch, as `cancel()` does. */
  signal?: AbortSignal;
  /**
   * `true`: the first item that fails for good fails the batch: items not started never run, running ones are
   * aborted. `map()` always fails fast; default false for `batch()` and `settle()`.
   */
  failFast?: boolean;
}

/** The outcome of one item of a batch. A `rejected` reason is a `DurableTaskError`, `TaskTimeoutError` or `TaskAbortedError`. */
export type DurableOutcome<O> =
  { status: 'fulfilled'; value: O; index: number } | { status: 'rejected'; reason: unknown; index: number };

/** Counts of a batch, read from Redis (any instance). */
export interface DurableBatchProgress {
  /** Items stored (all of them once `batch()` resolved). */
  total: number;
  completed: number;
  failed: number;
  running: number;
  /** Stored, not finished, not running (or never to run: after `cancel()` or a fail-fast failure). */
  waiting: number;
}
