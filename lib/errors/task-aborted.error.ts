/**
 * The reason a task's `AbortSignal` carries when it was cancelled on purpose: `terminateChild()`, `Task.shutdown()`,
 * a supervisor shutting down, or a sibling failing in a fail-fast group.
 */
export class TaskAbortedError extends Error {
  constructor(
    readonly task: string,
    readonly why: string = 'cancelled',
  ) {
    super(`Task "${task}" was aborted (${why}).`);
    this.name = 'TaskAbortedError';
  }
}
