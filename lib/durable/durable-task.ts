import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import type { TaskOutcome } from '../supervisor/interfaces/task.interface.js';

/** @internal What a `DurableTask` asks for its outcome (the `DurableSupervisor`). */
export interface DurableTaskWaiter {
  outcome<R>(task: string, id: string, timeoutMs: number): Promise<TaskOutcome<R> | null>;
  terminateChild(id: string, task?: string): Promise<boolean>;
}

/**
 * A durable child started with `DurableSupervisor.async()`: its result comes from whichever instance ran it (Elixir's
 * `Task.async` on a remote node). The handle can be re-created anywhere from the task name and id.
 *
 * @publicApi
 */
export class DurableTask<R> {
  /** @internal Made by `DurableSupervisor.async()`. */
  constructor(
    readonly id: string,
    readonly task: string,
    private readonly waiter: DurableTaskWaiter,
  ) {}

  /**
   * The result, once the task has completed on any instance. Rejects with a `DurableTaskError` (the failure's
   * message as the running instance stored it) after its last attempt failed; with a `TaskTimeoutError` after
   * `timeoutMs`. A timeout only stops the waiting: the task goes on (it is durable work, maybe still queued behind
   * others), unless `{ terminate: true }` asks to terminate it then, as `Task.await` does.
   */
  async await(timeoutMs = 5000, opts?: { terminate?: boolean }): Promise<R> {
    const outcome = await this.waiter.outcome<R>(this.task, this.id, timeoutMs);
    if (outcome === null) {
      if (opts?.terminate === true) await this.waiter.terminateChild(this.id, this.task).catch(() => false);
      throw new TaskTimeoutError(timeoutMs, this.task);
    }
    if (outcome.status === 'rejected') throw outcome.reason;
    return outcome.value;
  }

  /** The outcome if the task finishes within `timeoutMs`, else null (it goes on; call again later). */
  yield(timeoutMs = 5000): Promise<TaskOutcome<R> | null> {
    return this.waiter.outcome<R>(this.task, this.id, timeoutMs);
  }
}
