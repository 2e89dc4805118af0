import { TaskAbortedError } from '../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import type { TaskOutcome } from './interfaces/task.interface.js';
import { checkTimeoutMs } from './utils/timeout.util.js';

/** Typed on `unknown`, so that `Task<T>` stays covariant in `T` (a `Task<never>` is a `Task<string>`). */
type Waiter = (outcome: TaskOutcome<unknown>) => void;

const noop = () => {};

/**
 * A running piece of work whose result someone will collect (Elixir's `Task`): created by
 * `TaskSupervisor.async()` and `FanOut.async()`. The owner starts the work and hands its promise in; the task records
 * how it ended, so a failure never becomes an unhandled rejection and `yield()` can be called again and again.
 */
export class Task<T> {
  #outcome: TaskOutcome<T> | undefined;
  #settled: Promise<TaskOutcome<T>> | undefined;
  /** Pending `settled()`/`yield()` callers, called once when the task settles; a `yield()` that times out leaves. */
  #waiters: Set<Waiter> | undefined;
  readonly #controller: AbortController;

  /** @internal Created by `TaskSupervisor.async()` and `FanOut.async()`. */
  constructor(
    readonly id: string,
    controller: AbortController,
    result: PromiseLike<T>,
  ) {
    this.#controller = controller;
    Promise.resolve(result).then(
      (value) => this.#finish({ status: 'fulfilled', value }),
      (reason: unknown) => this.#finish({ status: 'rejected', reason }),
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
    if (this.#outcome) return Promise.resolve(this.#outcome);
    return (this.#settled ??= new Promise((resolve) => this.watch(resolve as Waiter)));
  }

  /**
   * @internal Calls `waiter` once with the outcome when the task settles (at once if it has); returns a function that
   * detaches it. What a caller that may give up waiting uses (a timed-out `yield()`, `yieldMany`, `awaitMany`), so that
   * polling a long task leaves nothing behind, unlike a `.then()` on `settled()`.
   */
  watch(waiter: (outcome: TaskOutcome<T>) => void): () => void {
    if (this.#outcome) {
      waiter(this.#outcome);
      return noop;
    }
    const waiters = (this.#waiters ??= new Set());
    waiters.add(waiter as Waiter);
    return () => void waiters.delete(waiter as Waiter);
  }

  /** Aborts the task's signal (no-op once aborted). */
  abort(reason: unknown = new TaskAbortedError(this.id)): void {
    this.#controller.abort(reason);
  }

  /**
   * Waits for the result. On timeout, aborts the task (its `signal.reason` is the `TaskTimeoutError`) and rejects
   * with `TaskTimeoutError`; a failed task rejects with its own error. `timeoutMs`: up to 2^31 - 1, or `Infinity`.
   */
  async await(timeoutMs = 5000): Promise<T> {
    checkTimeoutMs('Task.await()', timeoutMs);
    const outcome = await this.yield(timeoutMs);
    if (outcome === null) {
      const error = new TaskTimeoutError(timeoutMs, this.id);
      this.abort(error);
      throw error;
    }
    if (outcome.status === 'rejected') throw outcome.reason;
    return outcome.value;
  }

  /**
   * Waits up to `timeoutMs` for the outcome; `null` when the task still runs (it keeps running; call again). Polling
   * keeps nothing behind: a call that times out leaves the task's waiters.
   */
  yield(timeoutMs = 5000): Promise<TaskOutcome<T> | null> {
    checkTimeoutMs('Task.yield()', timeoutMs);
    if (this.#outcome) return Promise.resolve(this.#outcome);
    if (timeoutMs === Infinity) return this.settled();
    return new Promise((resolve) => {
      const detach = this.watch((outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      });
      const timer = setTimeout(() => {
        detach();
        resolve(null);
      }, timeoutMs);
    });
  }

  /**
   * Aborts the task and waits up to `timeoutMs` for it to stop. Returns the outcome if a result (or a failure other
   * than the abort itself) arrived meanwhile, `null` if the task stopped because of the abort or is still going.
   */
  async shutdown(timeoutMs = 5000): Promise<TaskOutcome<T> | null> {
    checkTimeoutMs('Task.shutdown()', timeoutMs);
    if (this.#outcome) return this.#outcome;
    this.abort(new TaskAbortedError(this.id, 'shutdown'));
    const outcome = await this.yield(timeoutMs);
    if (outcome?.status === 'rejected' && outcome.reason === this.signal.reason) return null;
    return outcome;
  }

  #finish(outcome: TaskOutcome<T>): void {
    this.#outcome = outcome;
    const waiters = this.#waiters;
    this.#waiters = undefined;
    if (waiters !== undefined) for (const resolve of waiters) resolve(outcome);
  }
}
