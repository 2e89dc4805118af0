/** The testing kit's own switches (the second argument of `ConcurrencyTestingModule.forRoot()`, or of `forApp()`). */
export interface ConcurrencyTestingOptions {
  /**
   * Arm the jobs' timers at boot as in production (default false: a job runs only when a test calls
   * `ConcurrencyTester.runJob()` or `advance()`, or `JobRegistry.trigger()`).
   */
  armJobs?: boolean;
}

/** One failure reported by `ConcurrencyTester.failures()`. */
export interface ConcurrencyFailure {
  /**
   * `'task'`: a supervised child (an attempt); `'job'`: a job's run; `'fan-out'`: an item of map/settle/stream;
   * `'durable'`: an attempt of a durable task (on any instance sharing the Redis prefix).
   */
  kind: 'task' | 'job' | 'fan-out' | 'durable';
  /**
   * Task: the child's name, or its id when it has none (`default-3`). Job: its name. Fan-out: the item's
   * `ItemContext.id` (`map-2:5`: call map-2, item 5). Durable: the task name.
   */
  name: string;
  /** What it failed with (a `TaskTimeoutError` for a timeout). */
  error: unknown;
}
