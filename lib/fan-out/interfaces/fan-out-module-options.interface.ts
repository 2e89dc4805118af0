import type { ResourceLimits } from 'node:worker_threads';

/** Module-wide defaults for `FanOut` (`forRoot({ fanOut: { ... } })`). */
export interface FanOutModuleOptions {
  /** Items running at once when a call does not say. Default 16. */
  concurrency?: number;
  /** Per-item timeout in ms when a call does not say. Default 5000 (as Elixir's `Task.async_stream`); `Infinity` allowed. */
  timeout?: number;
  /**
   * Worker threads per worker module (`workerFn`), unless the `workerFn` sets its own `threads`: each module (by its
   * real path) gets one pool, started on first use and shared by every call. An integer >= 1. Default
   * `os.availableParallelism()`.
   */
  threads?: number;
  /**
   * At most this many items run on worker threads at once across every worker module, threads still finishing an
   * ended item (a native call) included; further items wait for a thread (their timeout runs). An integer >= 1.
   * Default `max(threads, os.availableParallelism())`.
   */
  maxThreads?: number;
  /** A worker thread idle this long (ms) exits; the pool starts threads again on demand. Default 10,000; `Infinity`: never. */
  idleTimeout?: number;
  /**
   * Memory limits of each worker thread (Node's `ResourceLimits`: `maxOldGenerationSizeMb`, `maxYoungGenerationSizeMb`,
   * `codeRangeSizeMb`, `stackSizeMb`). A thread over its limit dies; its item fails with `ERR_WORKER_OUT_OF_MEMORY`
   * and the pool goes on with a new thread. Default: no limit beyond the process's.
   */
  resourceLimits?: ResourceLimits;
}
