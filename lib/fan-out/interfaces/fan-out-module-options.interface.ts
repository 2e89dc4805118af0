/** Module-wide defaults for `FanOut` (`forRoot({ fanOut: { ... } })`). */
export interface FanOutModuleOptions {
  /** Items running at once when a call does not say. Default 16. */
  concurrency?: number;
  /** Per-item timeout in ms when a call does not say. Default 5000 (as Elixir's `Task.async_stream`); `Infinity` allowed. */
  timeout?: number;
  /**
   * Worker threads per worker module (`workerFn`): each module gets its own pool of this many threads, created on
   * first use and shared by every call. An integer >= 1. Default `os.availableParallelism()`.
   */
  threads?: number;
}
