/**
 * A task, a fan-out item or a group of tasks did not finish in time. The work behind it has been told to stop
 * through its `AbortSignal` (its `signal.reason` is this error).
 */
export class TaskTimeoutError extends Error {
  constructor(
    readonly timeoutMs: number,
    readonly task?: string,
  ) {
    super(
      `${task ? `Task "${task}"` : 'Task'} did not finish within ${timeoutMs} ms (timeout). ` +
        'Raise the timeout, or make the work honour ctx.signal so it stops when aborted.',
    );
    this.name = 'TaskTimeoutError';
  }
}
