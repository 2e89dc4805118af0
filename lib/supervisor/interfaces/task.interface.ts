/** What a supervised function, a task or a job receives. */
export interface TaskContext {
  /** Aborted when the work should stop: timeout, termination, shutdown. Pass it on to `fetch`, streams, timers. */
  signal: AbortSignal;
  /** The child's or task's id. */
  id: string;
  /** 1 for the first run, 2 for the first restart, ... */
  attempt: number;
}

/** How a task ended. */
export type TaskOutcome<T> = { status: 'fulfilled'; value: T } | { status: 'rejected'; reason: unknown };
