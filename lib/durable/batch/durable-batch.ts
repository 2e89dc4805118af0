import { TaskAbortedError } from '../../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../../errors/task-timeout.error.js';
import type { DurableBatchProgress, DurableOutcome } from './batch.interfaces.js';

/** @internal What a `DurableBatch` asks of the batch engine. */
export interface BatchReader {
  state(id: string): Promise<BatchState | undefined>;
  outcomes<O>(id: string, task: string, indexes: number[]): Promise<Array<DurableOutcome<O> | undefined>>;
  completedOrder(id: string, from: number, to: number): Promise<number[]>;
  cancel(id: string, task: string): Promise<void>;
  gone(id: string): Error;
}

/** @internal A batch's state as read from Redis. */
export interface BatchState {
  status: 'running' | 'done' | 'failed' | 'cancelled';
  stored: number;
  /** Set once every item is stored. */
  total: number | undefined;
  completed: number;
  failed: number;
  running: number;
  /** Index of the first item that failed for good. */
  firstFailed: number | undefined;
  task: string;
}

const POLL_MIN = 20;
const POLL_MAX = 200;
const CHUNK = 500;
/** How long a waiter keeps asking a Redis that does not answer before it rejects (ms). */
const UNAVAILABLE_GRACE = 30_000;

/** Ended: every outcome is in, or failed/cancelled with nothing running any more. */
const settled = (s: BatchState) => s.status === 'done' || (s.status !== 'running' && s.running === 0);

/**
 * A batch of durable items (`DurableSupervisor.batch()`), stored in Redis: its counts, outcomes and cancel flag live
 * there and advance without the caller, so any instance can re-attach with `DurableSupervisor.getBatch(id)`.
 *
 * @publicApi
 */
export class DurableBatch<O> {
  /** @internal Made by `DurableSupervisor.batch()` / `getBatch()`. */
  constructor(
    readonly id: string,
    readonly task: string,
    private readonly reader: BatchReader,
  ) {}

  /**
   * The values in input order once every item completed. Rejects with the first item's failure (a
   * `DurableTaskError`, `TaskTimeoutError` or `TaskAbortedError`) as soon as one failed for good, with a
   * `TaskAbortedError` once the batch is cancelled, with a `TaskTimeoutError` after `timeoutMs` (default: no limit;
   * the batch goes on: `cancel()` stops it).
   */
  async await(timeoutMs = Infinity): Promise<O[]> {
    const state = await this.waitFor(timeoutMs, (s) => s.status !== 'running' || s.firstFailed !== undefined);
    if (state.status === 'cancelled') throw new TaskAbortedError(this.task, `batch ${this.id} cancelled`);
    const first = state.firstFailed;
    if (first !== undefined) {
      const [outcome] = await this.tolerant(() => this.reader.outcomes<O>(this.id, this.task, [first]));
      throw outcome?.status === 'rejected' ? outcome.reason : this.reader.gone(this.id);
    }
    const values: O[] = [];
    for await (const outcome of this.all(state)) {
      if (outcome.status === 'rejected') throw outcome.reason;
      values.push(outcome.value);
    }
    return values;
  }

  /**
   * One outcome per input, in input order, once the batch has ended (every item finished, or cancelled / failed fast
   * and nothing of it runs any more: items that never ran are `TaskAbortedError`s). Never rejects for an item.
   */
  async settle(timeoutMs = Infinity): Promise<DurableOutcome<O>[]> {
    const state = await this.waitFor(timeoutMs, settled);
    const outcomes: DurableOutcome<O>[] = [];
    for await (const outcome of this.all(state)) outcomes.push(outcome);
    return outcomes;
  }

  /**
   * The outcomes as they arrive: in input order (default) or `{ ordered: false }` in completion order. Ends once the
   * batch has ended; items that never ran (cancelled, failed fast) come last as `TaskAbortedError`s.
   */
  async *results(opts?: { ordered?: boolean }): AsyncIterable<DurableOutcome<O>> {
    if (opts?.ordered === false) {
      yield* this.asCompleted();
      return;
    }
    let next = 0;
    let delay = POLL_MIN;
    for (;;) {
      const state = await this.read();
      const end = state.total ?? (settled(state) ? state.stored : Infinity);
      if (next >= end) return;
      const to = Math.min(end === Infinity ? state.stored : end, next + CHUNK);
      const chunk =
        next < to ? await this.tolerant(() => this.reader.outcomes<O>(this.id, this.task, range(next, to))) : [];
      let progressed = false;
      for (const outcome of chunk) {
        if (outcome === undefined) {
          if (!settled(state)) break;
          yield this.neverRan(next++);
        } else {
          yield outcome;
          next++;
        }
        progressed = true;
      }
      if (progressed) delay = POLL_MIN;
      else delay = await pause(delay);
    }
  }

  /** Counts read from Redis now (any instance). */
  async progress(): Promise<DurableBatchProgress> {
    const s = await this.read();
    const total = s.total ?? s.stored;
    const { completed, failed, running } = s;
    return { total, completed, failed, running, waiting: Math.max(0, total - completed - failed - running) };
  }

  /**
   * Stops the batch on every instance: no item starts afterwards, running items have their `ctx.signal` aborted
   * (`TaskAbortedError`) wherever they run, `await()` rejects. Resolves once the flag is stored (a finished batch
   * stays as it is).
   */
  cancel(): Promise<void> {
    return this.reader.cancel(this.id, this.task);
  }

  private async read(): Promise<BatchState> {
    const state = await this.tolerant(() => this.reader.state(this.id));
    if (!state) throw this.reader.gone(this.id);
    return state;
  }

  /**
   * `call`, asked again while Redis is unavailable (a dropped connection, a failover) for up to `UNAVAILABLE_GRACE`
   * in a row: the batch goes on in Redis meanwhile, a waiter should not fail for a blip. Past it, the last error.
   */
  private async tolerant<T>(call: () => Promise<T>): Promise<T> {
    const since = Date.now();
    let delay = POLL_MIN;
    for (;;) {
      try {
        return await call();
      } catch (error) {
        if ((error as Error | undefined)?.name !== 'DurableUnavailableError') throw error;
        if (Date.now() - since > UNAVAILABLE_GRACE) throw error;
        delay = await pause(delay);
      }
    }
  }

  private async waitFor(timeoutMs: number, done: (s: BatchState) => boolean): Promise<BatchState> {
    const deadline = timeoutMs === Infinity ? Infinity : Date.now() + timeoutMs;
    let delay = POLL_MIN;
    let seen = -1;
    for (;;) {
      const state = await this.read();
      if (done(state)) return state;
      if (Date.now() >= deadline) throw new TaskTimeoutError(timeoutMs, this.task);
      const moved = state.completed + state.failed;
      if (moved !== seen) delay = POLL_MIN;
      seen = moved;
      delay = await pause(Math.min(delay, Math.max(1, deadline - Date.now())));
    }
  }

  /** Every outcome in input order, of a batch that has ended or has every outcome in. */
  private async *all(state: BatchState): AsyncIterable<DurableOutcome<O>> {
    const total = state.total ?? state.stored;
    for (let from = 0; from < total; from += CHUNK) {
      const to = Math.min(total, from + CHUNK);
      const chunk = await this.tolerant(() => this.reader.outcomes<O>(this.id, this.task, range(from, to)));
      for (let i = 0; i < chunk.length; i++) yield chunk[i] ?? this.neverRan(from + i);
    }
  }

  private async *asCompleted(): AsyncIterable<DurableOutcome<O>> {
    let pos = 0;
    let delay = POLL_MIN;
    const seen: boolean[] = [];
    for (;;) {
      const state = await this.read();
      const order = await this.tolerant(() => this.reader.completedOrder(this.id, pos, pos + CHUNK));
      if (order.length > 0) {
        delay = POLL_MIN;
        const outcomes = await this.outcomesAt(order);
        for (let i = 0; i < order.length; i++) {
          seen[order[i]!] = true;
          pos++;
          yield outcomes[i]!;
        }
        continue;
      }
      const end = state.total ?? state.stored;
      if (state.status === 'done' && pos >= end) return;
      if (settled(state)) {
        for (let i = 0; i < end; i++) if (!seen[i]) yield this.neverRan(i);
        return;
      }
      delay = await pause(delay);
    }
  }

  private async outcomesAt(indexes: number[]): Promise<DurableOutcome<O>[]> {
    const outcomes = await this.tolerant(() => this.reader.outcomes<O>(this.id, this.task, indexes));
    return indexes.map((index, i) => outcomes[i] ?? this.neverRan(index));
  }

  private neverRan(index: number): DurableOutcome<O> {
    return {
      status: 'rejected',
      reason: new TaskAbortedError(this.task, `batch ${this.id} ended before item ${index} ran`),
      index,
    };
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Waits `ms`, returns the next wait (doubling up to the cap). */
async function pause(ms: number): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, ms));
  return Math.min(POLL_MAX, ms * 2);
}
