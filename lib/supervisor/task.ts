import { TaskAbortedError } from '../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import type { TaskOutcome } from './interfaces/task.interface.js';

/**
 * A running piece of work whose result someone will collect (Elixir's `Task`): created by
 * `TaskSupervisor.async()` and `FanOut.async()`. The owner starts the work and hands its promise in; the task records
 * how it ended, so a failure never becomes an unhandled rejection and `yield()` can be called again and again.
 */
export class Task<T> {
  #outcome: TaskOutcome<T> | undefined;
  readonly #settled: Promise<TaskOutcome<T>>;
  readonly #controller: AbortController;

  /** @internal Created by `TaskSupervisor.async()` and `FanOut.async()`. */
  constructor(
    readonly id: string,
    controller: AbortController,
    result: PromiseLike<T>,
  ) {
    this.#controller = controller;
    this.#settled = Promise.resolve(result).then(
      (value) => (this.#outcome = { status: 'fulfilled', value }),
      (reason: unknown) => (this.#outcome = { status: 'rejected', reason }),
    );
  }

  /** The signal handed to the work. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** How the task ended, or `undefined` while it runs. */
  get outcome(): TaskOutcome<T> | undefined {
    return this.#outcome;
  }

  /** Resolves with the outcome once the task has settled, whenever that is. Never rejects. */
  settled(): Promise<TaskOutcome<T>> {
    return this.#settled;
  }

  /** Aborts the task's signal (no-op once aborted). */
  abort(reason: unknown = new TaskAbortedError(this.id)): void {
    this.#controller.abort(reason);
  }

  /**
   * Waits for the result. On timeout, aborts the task (its `signal.reason` is the `TaskTimeoutError`) and rejects
   * with `TaskTimeoutError`; a failed task rejects with its own error.
   */
  async await(timeoutMs = 5000): Promise<T> {
    const outcome = await this.yield(timeoutMs);
    if (outcome === null) {
      const error = new TaskTimeoutError(timeoutMs, this.id);
      this.abort(error);
      throw error;
    }
    if (outcome.status === 'rejected') throw outcome.reason;
    return outcome.value;
  }

  /** Waits up to `timeoutMs` for the outcome; `null` when the task still runs (it keeps running; call again). */
  yield(timeoutMs = 5000): Promise<TaskOutcome<T> | null> {
    if (this.#outcome) return Promise.resolve(this.#outcome);
    if (timeoutMs === Infinity) return this.#settled;
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs, null);
      void this.#settled.then((outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
    });
  }

  /**
   * Aborts the task and waits up to `timeoutMs` for it to stop. Returns the outcome if a result (or a failure other
   * than the abort itself) arrived meanwhile, `null` if the task stopped because of the abort or is still going.
   */
  async shutdown(timeoutMs = 5000): Promise<TaskOutcome<T> | null> {
    if (this.#outcome) return this.#outcome;
    this.abort(new TaskAbortedError(this.id, 'shutdown'));
    const outcome = await this.yield(timeoutMs);
    if (outcome?.status === 'rejected' && outcome.reason === this.signal.reason) return null;
    return outcome;
  }
}
