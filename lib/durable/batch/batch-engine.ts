import { randomUUID } from 'node:crypto';
import type { Queue } from 'bullmq';
import { TaskAbortedError } from '../../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../../errors/task-timeout.error.js';
import { MAX_TIMEOUT_MS } from '../../supervisor/utils/timeout.util.js';
import { BACKOFF_TYPE, UNKNOWN_HANDLER_ATTEMPTS } from '../durable.constants.js';
import type { StoreOperation } from '../durable.messages.js';
import { INVALID_PAYLOAD, PAYLOAD_TOO_LARGE } from '../durable.messages.js';
import { DurableTaskError, InvalidPayloadError } from '../errors/durable.errors.js';
import type { ResolvedDurableOptions } from '../interfaces/durable-options.interface.js';
import { fromJobId, toItemJobId, toJobId } from '../utils/job-id.util.js';
import { toJson } from '../utils/json-check.util.js';
import { BATCH_ITEM, itemId, parseItem, rejectedJson, type StoredOutcome } from './batch-item.util.js';
import type { DurableBatchOptions, DurableOutcome } from './batch.interfaces.js';
import {
  BATCH_GONE,
  BATCH_INPUT_REJECTED,
  BATCH_TASK_MISMATCH,
  INVALID_BATCH_OPTION,
  INVALID_INPUTS,
  UNKNOWN_BATCH_OPTION,
} from './batch.messages.js';
import {
  BATCH_INDEX_CAP,
  batchIndexKey,
  type BatchRedis,
  batchKeys,
  CANCEL,
  CREATE,
  FINISH,
  runScript,
  SEAL,
  STATE,
  STORED,
} from './batch.scripts.js';
import { type BatchReader, type BatchState, DurableBatch } from './durable-batch.js';

const BATCH_OPTIONS = ['concurrency', 'id', 'timeout', 'signal', 'failFast'];
/** Inputs stored per round trip (one addBulk): the caller holds at most this many at once. */
export const STORE_CHUNK = 1000;
const MAX_BATCH_ID_LENGTH = 256;

/** @internal One batch as the dashboard lists it. */
export interface BatchSummary {
  id: string;
  task: string;
  status: BatchState['status'];
  /** Items in all (stored so far while the batch is being stored). */
  total: number;
  completed: number;
  failed: number;
  running: number;
  waiting: number;
}

/** @internal What the batch engine needs of the `DurableSupervisor`. */
export interface BatchHost {
  options(): ResolvedDurableOptions;
  client(): Promise<BatchRedis>;
  queue(task: string): Queue;
  store<T>(op: StoreOperation, task: string, call: () => Promise<T>): Promise<T>;
  /** The task name is now in use (its name goes to the Redis set of names). */
  register(task: string): void;
  /** Asks every instance to abort the running job `jobId` of `task`. */
  terminate(task: string, jobId: string): Promise<void>;
}

/**
 * @internal Durable map / settle / batch: stores a batch's items as BullMQ jobs in chunks, and reads and cancels
 * batches. The batch advances in Redis (see batch.scripts.ts), run by the workers.
 */
export class BatchEngine implements BatchReader {
  constructor(private readonly host: BatchHost) {}

  /** Checks everything it can before anything is stored: options, inputs (an array whole, else the first chunk). */
  async create<O>(
    task: string,
    inputs: Iterable<unknown> | AsyncIterable<unknown>,
    opts: DurableBatchOptions | undefined,
    failFast: boolean,
  ): Promise<DurableBatch<O>> {
    const durable = this.host.options();
    checkBatchOptions(task, opts);
    const iterator = iterate(task, inputs);
    const signal = opts?.signal;
    signal?.throwIfAborted();
    // The first chunk (an array: all of it) is read and checked before the batch exists.
    const first = await this.readChunk(task, iterator, Array.isArray(inputs) ? Infinity : STORE_CHUNK, 0, durable);
    if ('bad' in first) throw first.bad;
    const id = opts?.id ?? randomUUID();
    const keys = batchKeys(durable.prefix, toJobId(id));
    const created = (await this.host.store('start', task, async () =>
      runScript(
        await this.host.client(),
        CREATE,
        [keys[0], batchIndexKey(durable.prefix)],
        [
          task,
          failFast || opts?.failFast === true ? '1' : '0',
          opts?.concurrency ?? 0,
          opts?.timeout ?? '',
          Date.now(),
          id,
          BATCH_INDEX_CAP,
        ],
      ),
    )) as string[];
    const batch = new DurableBatch<O>(id, task, this);
    if (created[0] === 'existing') {
      if (created[1] !== task) throw new Error(BATCH_TASK_MISMATCH(id, task, created[1]!));
      if (created[3] !== '') {
        this.onAbort(batch, signal);
        return batch; // stored whole before: the same batch, nothing stored again
      }
    }
    // New, or a batch whose caller stopped while storing: store (the rest), in chunks.
    const resume = created[0] === 'existing' ? Number(created[2]) : 0;
    this.onAbort(batch, signal);
    let chunk = first.items;
    let index = 0;
    for (;;) {
      const from = index;
      index += chunk.length;
      if (index > resume) await this.storeChunk(task, id, keys, chunk, from, resume, durable);
      if (chunk.length === 0 || (Array.isArray(inputs) && index >= inputs.length)) break;
      const next = await this.readChunk(task, iterator, STORE_CHUNK, index, durable);
      if ('bad' in next) {
        // Items before it are stored and may run: the batch is cancelled, the call names the input.
        await this.cancel(id, task).catch(() => undefined);
        const error = next.bad;
        error.message = `${BATCH_INPUT_REJECTED(task, next.index)} ${error.message}`;
        throw error;
      }
      if (next.items.length === 0) break;
      chunk = next.items;
    }
    await this.host.store('start', task, async () =>
      runScript(await this.host.client(), SEAL, keys, [index, durable.retention.completed.age]),
    );
    this.host.register(task);
    return batch;
  }

  async get<O>(id: string): Promise<DurableBatch<O> | undefined> {
    const state = await this.state(id);
    return state ? new DurableBatch<O>(id, state.task, this) : undefined;
  }

  /**
   * The newest `limit` batches still recorded (newest first) with their progress, and how many the index holds (at
   * most `BATCH_INDEX_CAP`). Ids whose record expired are dropped from the index as they are met.
   */
  async list(limit: number): Promise<{ total: number; batches: BatchSummary[] }> {
    const index = batchIndexKey(this.host.options().prefix);
    const client = await this.host.client();
    const ids = await this.host.store('list', '*', () => client.zrevrange(index, 0, limit - 1));
    const states = await Promise.all(ids.map(async (id) => ({ id, state: await this.state(id) })));
    const gone = states.filter((s) => s.state === undefined).map((s) => s.id);
    if (gone.length > 0) await this.host.store('list', '*', () => client.zrem(index, ...gone));
    const total = await this.host.store('list', '*', () => client.zcard(index));
    const batches = states.flatMap(({ id, state }) => {
      if (state === undefined) return [];
      const total = state.total ?? state.stored;
      const { completed, failed, running } = state;
      const waiting = Math.max(0, total - completed - failed - running);
      return [{ id, task: state.task, status: state.status, total, completed, failed, running, waiting }];
    });
    return { total, batches };
  }

  async state(id: string): Promise<BatchState | undefined> {
    const durable = this.host.options();
    const keys = batchKeys(durable.prefix, toJobId(id));
    const task = await this.taskOf(keys[0]);
    if (task === undefined) return undefined;
    const reply = (await this.host.store('list', task, async () =>
      runScript(await this.host.client(), STATE, [keys[0], keys[1]], [`${durable.prefix}:${task}:`]),
    )) as Array<string | number>;
    if (reply.length === 0) return undefined;
    const [status, stored, total, done, failed, running, err] = reply;
    return {
      status: status as BatchState['status'],
      stored: Number(stored),
      total: total === '' ? undefined : Number(total),
      completed: Number(done),
      failed: Number(failed),
      running: Number(running),
      firstFailed: err === '' ? undefined : Number(err),
      task,
    };
  }

  async outcomes<O>(id: string, task: string, indexes: number[]): Promise<Array<DurableOutcome<O> | undefined>> {
    if (indexes.length === 0) return [];
    const keys = batchKeys(this.host.options().prefix, toJobId(id));
    const raw = await this.host.store('list', task, async () =>
      (await this.host.client()).hmget(keys[2], ...indexes.map(String)),
    );
    return raw.map((text, i) => (text === null ? undefined : revive<O>(task, id, indexes[i]!, text)));
  }

  async completedOrder(id: string, from: number, to: number): Promise<number[]> {
    const keys = batchKeys(this.host.options().prefix, toJobId(id));
    const list = await this.host.store('list', '*', async () =>
      (await this.host.client()).lrange(keys[3], from, to - 1),
    );
    return list.map(Number);
  }

  async cancel(id: string, task: string): Promise<void> {
    const durable = this.host.options();
    const keys = batchKeys(durable.prefix, toJobId(id));
    const reply = (await this.host.store('terminate', task, async () =>
      runScript(await this.host.client(), CANCEL, keys, [durable.retention.completed.age]),
    )) as string[];
    if (reply[0] !== 'cancelled') return;
    await Promise.all(reply.slice(1).map((jobId) => this.host.terminate(task, jobId).catch(() => undefined)));
  }

  /**
   * A waiting item was removed (`terminateChild()`): it never runs, so its outcome is recorded here (a
   * `TaskAbortedError`), or its batch would wait for it for good.
   */
  async itemRemoved(task: string, jobId: string): Promise<void> {
    const durable = this.host.options();
    const { index, keys } = parseItem(durable.prefix, fromJobId(jobId));
    const outcome = rejectedJson(new TaskAbortedError(task, 'terminated').message, 'terminated');
    const reply = (await this.host.store('terminate', task, async () =>
      runScript(await this.host.client(), FINISH, keys, [index, jobId, outcome, 1, durable.retention.completed.age]),
    )) as string[];
    if (reply[0] !== 'abort') return;
    await Promise.all(reply.slice(1).map((id) => this.host.terminate(task, id).catch(() => undefined)));
  }

  gone(id: string): Error {
    return new Error(BATCH_GONE(id));
  }

  private async taskOf(metaKey: string): Promise<string | undefined> {
    const [task] = await this.host.store('list', '*', async () => (await this.host.client()).hmget(metaKey, 'task'));
    return task ?? undefined;
  }

  /** `signal` aborts the batch as `cancel()` does. */
  private onAbort(batch: DurableBatch<unknown>, signal: AbortSignal | undefined): void {
    if (!signal) return;
    const cancel = () => void batch.cancel().catch(() => undefined);
    if (signal.aborted) cancel();
    else signal.addEventListener('abort', cancel, { once: true });
  }

  /** Up to `max` inputs, each checked as the JSON that will be stored; or the first bad one, as the error to throw. */
  private async readChunk(
    task: string,
    iterator: Iterator<unknown> | AsyncIterator<unknown>,
    max: number,
    start: number,
    durable: ResolvedDurableOptions,
  ): Promise<{ items: string[] } | { bad: InvalidPayloadError; index: number }> {
    const items: string[] = [];
    while (items.length < max) {
      const next = await iterator.next();
      if (next.done) break;
      const index = start + items.length;
      const label = `inputs[${index}]`;
      const checked = toJson(next.value === undefined ? null : next.value, label);
      if (!('json' in checked)) {
        return {
          bad: new InvalidPayloadError(task, checked.path, INVALID_PAYLOAD(task, checked.path, checked.what)),
          index,
        };
      }
      const size = Buffer.byteLength(checked.json);
      if (size > durable.maxPayloadSize) {
        return {
          bad: new InvalidPayloadError(task, label, PAYLOAD_TOO_LARGE(task, size, durable.maxPayloadSize)),
          index,
        };
      }
      items.push(checked.json);
    }
    return { items };
  }

  private async storeChunk(
    task: string,
    id: string,
    keys: string[],
    chunk: string[],
    from: number,
    resume: number,
    durable: ResolvedDurableOptions,
  ): Promise<void> {
    for (let start = Math.max(0, resume - from); start < chunk.length; start += STORE_CHUNK) {
      const end = Math.min(chunk.length, start + STORE_CHUNK);
      await this.storeSlice(task, id, keys, chunk, from, start, end, durable);
    }
  }

  private async storeSlice(
    task: string,
    id: string,
    keys: string[],
    chunk: string[],
    from: number,
    start: number,
    end: number,
    durable: ResolvedDurableOptions,
  ): Promise<void> {
    const queue = this.host.queue(task);
    const { failed } = durable.retention;
    const jobs: Parameters<Queue['addBulk']>[0] = [];
    for (let i = start; i < end; i++) {
      jobs.push({
        name: BATCH_ITEM,
        data: JSON.parse(chunk[i]!) as unknown,
        opts: {
          jobId: toItemJobId(id, from + i),
          attempts: UNKNOWN_HANDLER_ATTEMPTS,
          backoff: { type: BACKOFF_TYPE },
          // The outcome is in the batch's record: a completed item's job is not kept.
          removeOnComplete: true,
          removeOnFail: { count: failed.count, age: Math.ceil(failed.age / 1000) },
        },
      });
    }
    if (jobs.length === 0) return;
    await this.host.store('start', task, () => queue.addBulk(jobs));
    await this.host.store('start', task, async () =>
      runScript(await this.host.client(), STORED, [keys[0]!], [from + end]),
    );
  }
}

/** An outcome as stored by a worker, as the caller sees it. */
function revive<O>(task: string, batchId: string, index: number, text: string): DurableOutcome<O> {
  const stored = JSON.parse(text) as StoredOutcome;
  if (stored.e === undefined) return { status: 'fulfilled', value: stored.v as O, index };
  let reason: Error;
  if (stored.k === 'timeout') {
    reason = new TaskTimeoutError(0, task);
    reason.message = stored.e;
  } else if (stored.k === 'terminated') {
    reason = new TaskAbortedError(task, 'terminated');
    reason.message = stored.e;
  } else {
    reason = new DurableTaskError(task, itemId(batchId, index), stored.e);
  }
  return { status: 'rejected', reason, index };
}

function iterate(task: string, inputs: unknown): Iterator<unknown> | AsyncIterator<unknown> {
  if (inputs !== null && typeof inputs === 'object') {
    const asyncIt = (inputs as AsyncIterable<unknown>)[Symbol.asyncIterator];
    if (typeof asyncIt === 'function') return asyncIt.call(inputs);
  }
  if (inputs !== null && inputs !== undefined && typeof (inputs as Iterable<unknown>)[Symbol.iterator] === 'function') {
    if (typeof inputs !== 'string') return (inputs as Iterable<unknown>)[Symbol.iterator]();
  }
  throw new TypeError(INVALID_INPUTS(task, inputs));
}

function checkBatchOptions(task: string, opts: DurableBatchOptions | undefined): void {
  if (opts === undefined) return;
  if (opts === null || typeof opts !== 'object') {
    throw new TypeError(INVALID_BATCH_OPTION(task, 'opts', `an object with ${BATCH_OPTIONS.join(', ')}`, opts));
  }
  for (const key of Object.keys(opts)) {
    if (!BATCH_OPTIONS.includes(key)) throw new TypeError(UNKNOWN_BATCH_OPTION(task, key, BATCH_OPTIONS));
  }
  const { concurrency, id, timeout, signal, failFast } = opts;
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1)) {
    throw new RangeError(INVALID_BATCH_OPTION(task, 'concurrency', 'an integer >= 1', concurrency));
  }
  if (
    id !== undefined &&
    (typeof id !== 'string' || id === '' || id.length > MAX_BATCH_ID_LENGTH || fromJobId(toJobId(id)) !== id)
  ) {
    throw new TypeError(
      INVALID_BATCH_OPTION(task, 'id', `a non-empty string of at most ${MAX_BATCH_ID_LENGTH} characters`, id),
    );
  }
  if (timeout !== undefined && !(typeof timeout === 'number' && timeout > 0 && timeout <= MAX_TIMEOUT_MS)) {
    throw new RangeError(INVALID_BATCH_OPTION(task, 'timeout', `a number of ms > 0 and <= ${MAX_TIMEOUT_MS}`, timeout));
  }
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw new TypeError(INVALID_BATCH_OPTION(task, 'signal', 'an AbortSignal', signal));
  }
  if (failFast !== undefined && typeof failFast !== 'boolean') {
    throw new TypeError(INVALID_BATCH_OPTION(task, 'failFast', 'a boolean', failFast));
  }
}
