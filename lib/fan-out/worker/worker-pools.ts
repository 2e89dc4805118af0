import { Logger } from '@nestjs/common';
import { existsSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { type ResourceLimits, Worker } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import { callerDirectory } from '../../utils/caller-directory.js';
import { describeValue, errorMessage, isError } from '../../utils/describe.js';
import {
  WORKERS_CLOSED,
  piscinaMissingMessage,
  workerCloneMessage,
  workerDetachedMessage,
  workerDiedMessage,
  workerEntryMissingMessage,
  workerModuleMissingMessage,
  workerResultMessage,
} from '../fan-out.messages.js';
import { FanOutItemContext } from '../fan-out.engine.js';
import type { FanOutFn, ItemContext } from '../interfaces/fan-out-options.interface.js';
import type { WorkerSpec } from './worker-fn.js';

/** The file every pool runs on its threads; plain CommonJS, beside this file in the sources and in both builds. */
const ENTRY_FILE = 'fan-out.worker.cjs';
/** What the entry file throws for an item's error (see fan-out.worker.cjs). */
const MARK = 'nestjs-concurrency:worker-error';

/** An item's failure as the entry file sends it: an Error's parts, or (`value`) a thrown value that is not an Error. */
interface SerialisedError {
  [MARK]: true;
  value?: unknown;
  name: string;
  message: string;
  stack: string;
  code: string | number | undefined;
  /** The error's `cause`, serialised the same way (absent when it had none). */
  cause?: unknown;
  /** An AggregateError's `errors`, each serialised the same way. */
  errors?: unknown[];
  /** Own enumerable properties that structured clone carries (`status`, `details`...). */
  props?: Record<string, unknown>;
}

/** What one item sends to its thread: the export, the index, the input. */
interface WorkerTask {
  e: string;
  i: number;
  x: unknown;
}

/** This file's directory, where both builds ship the worker entry (read once, on the first pool). */
let here: string | undefined;

const BUILT_INS: Record<string, ErrorConstructor> = {
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

function isSerialisedError(error: unknown): error is SerialisedError {
  return typeof error === 'object' && error !== null && (error as SerialisedError)[MARK] === true;
}

/** A value as the worker sent it: a serialised error rebuilt, a thrown non-Error value as it was. */
function revive(value: unknown): unknown {
  if (!isSerialisedError(value)) return value;
  return 'value' in value ? value.value : rebuild(value);
}

/**
 * An item's error as the caller sees it: the worker's class name (a built-in class where it was one), message, stack
 * frames, `code`, `cause`, an AggregateError's `errors` and the own properties structured clone carried.
 */
function rebuild(serialised: SerialisedError): Error {
  const { name, message, stack, code, props } = serialised;
  const error =
    name === 'AggregateError'
      ? new AggregateError((serialised.errors ?? []).map(revive), message)
      : new (BUILT_INS[name] ?? Error)(message);
  if (error.name !== name) Object.defineProperty(error, 'name', { value: name, configurable: true, writable: true });
  const frames = stack.split('\n').filter((line) => line.trimStart().startsWith('at '));
  error.stack = frames.length === 0 ? `${name}: ${message}` : `${name}: ${message}\n${frames.join('\n')}`;
  if (code !== undefined) (error as Error & { code: unknown }).code = code;
  if ('cause' in serialised) {
    // As `new Error(message, { cause })` makes it: own, not enumerable.
    Object.defineProperty(error, 'cause', { value: revive(serialised.cause), configurable: true, writable: true });
  }
  if (props !== undefined) {
    for (const key of Object.keys(props)) {
      Object.defineProperty(error, key, { value: props[key], configurable: true, writable: true, enumerable: true });
    }
  }
  return error;
}

function addBuffer(value: unknown, list: Set<ArrayBuffer>): void {
  if (value instanceof ArrayBuffer) list.add(value);
  else if (ArrayBuffer.isView(value)) {
    const buffer = value.buffer;
    // Only a buffer the view covers whole: a small Node Buffer shares an 8 KiB pool with other Buffers.
    if (buffer instanceof ArrayBuffer && value.byteOffset === 0 && value.byteLength === buffer.byteLength) {
      list.add(buffer);
    }
  }
}

/** `transfer: true`: the ArrayBuffers of the input, of its elements (an array) or of its own values (an object). */
function transferables(input: unknown): ArrayBuffer[] | undefined {
  const list = new Set<ArrayBuffer>();
  addBuffer(input, list);
  if (Array.isArray(input)) for (const value of input) addBuffer(value, list);
  else if (
    typeof input === 'object' &&
    input !== null &&
    !ArrayBuffer.isView(input) &&
    !(input instanceof ArrayBuffer)
  ) {
    for (const value of Object.values(input)) addBuffer(value, list);
  }
  return list.size === 0 ? undefined : [...list];
}

function canClone(value: unknown): boolean {
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

/** The Worker behind piscina's worker handle (kept under a symbol), to wait for its exit at close. */
function workerOf(handle: object): Worker | undefined {
  for (const key of Object.getOwnPropertySymbols(handle)) {
    const info = (handle as Record<symbol, { worker?: unknown } | undefined>)[key];
    if (info?.worker instanceof Worker) return info.worker;
  }
  return undefined;
}

/** @internal What `WorkerPools` takes from `forRoot({ fanOut })`. */
export interface WorkerPoolSettings {
  threads: number;
  maxThreads: number;
  idleTimeout: number;
  resourceLimits: ResourceLimits;
}

/** One module's pool and the items it runs now. */
interface PoolState {
  readonly pool: Piscina;
  /** Its key in the pools map (the module's real path). */
  readonly key: string;
  /** Items handed to the pool and not settled. */
  busy: number;
  /** Items waiting for a thread of this pool (a pool with some is never retired). */
  waiting: number;
  /** Ended to free threads for another module (`fanOut.maxThreads`); a later item starts a new pool. */
  retired: boolean;
}

const noop = () => {};

/** An item waiting for a thread (`fanOut.maxThreads`). */
interface Waiter {
  state: PoolState;
  resolve: () => void;
  reject: (reason: unknown) => void;
  signal: ItemSignal;
  onAbort: () => void;
}

/**
 * The abort of one item as piscina takes it (`aborted`, `reason`, one 'abort' listener at a time: the pool's wait,
 * then piscina's own), fed by the engine's abort of the item. Lighter than an `AbortController` and its `EventTarget`
 * per item, which cost more than a tiny item's round trip to its thread.
 */
class ItemSignal {
  aborted = false;
  reason: unknown = undefined;
  #listener: (() => void) | undefined;

  addEventListener(_type: 'abort', listener: () => void): void {
    this.#listener = listener;
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    if (this.#listener === listener) this.#listener = undefined;
  }

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listener = this.#listener;
    this.#listener = undefined;
    listener?.();
  }
}

/** The item's abort as an `ItemSignal`: through the engine's hook, else (any other context) its `AbortSignal`. */
function itemSignal(ctx: ItemContext): ItemSignal {
  const signal = new ItemSignal();
  if (ctx instanceof FanOutItemContext) FanOutItemContext.listen(ctx, (reason) => signal.abort(reason));
  else if (ctx.signal.aborted) signal.abort(ctx.signal.reason);
  else ctx.signal.addEventListener('abort', () => signal.abort(ctx.signal.reason), { once: true });
  return signal;
}

/** The real path of a worker module (one pool per file, whatever URL spelling or symlink names it), or undefined. */
function realModulePath(module: string): string | undefined {
  try {
    return realpathSync(fileURLToPath(module));
  } catch {
    return undefined;
  }
}

/** A detached ArrayBuffer (transferred or moved already): its byteLength is 0 and no view can be made on it. */
function isDetached(buffer: ArrayBuffer): boolean {
  if (buffer.byteLength !== 0) return false;
  try {
    new Uint8Array(buffer);
    return false;
  } catch {
    return true;
  }
}

function hasDetached(value: unknown): boolean {
  if (value instanceof ArrayBuffer) return isDetached(value);
  if (ArrayBuffer.isView(value)) return value.buffer instanceof ArrayBuffer && isDetached(value.buffer);
  return false;
}

/** The input, the elements of an array input or the own values of an object input hold a detached buffer. */
function detachedIn(input: unknown): boolean {
  if (hasDetached(input)) return true;
  if (Array.isArray(input)) return input.some(hasDetached);
  if (typeof input === 'object' && input !== null && !ArrayBuffer.isView(input) && !(input instanceof ArrayBuffer)) {
    return Object.values(input).some(hasDetached);
  }
  return false;
}

/**
 * @internal The worker-thread pools of one `FanOut`: one piscina pool per worker module (by real path), started on
 * demand, whose idle threads exit after `idleTimeout`. At most `maxThreads` items run on threads at once across all
 * pools, threads still finishing an ended item (stuck in a native call) counted. `close()` seals the pools and waits
 * until every thread they ever started has exited.
 */
export class WorkerPools {
  /** By real path of the worker module. */
  readonly #pools = new Map<string, Promise<PoolState>>();
  /** The pools in service (not retired). */
  readonly #states = new Set<PoolState>();
  /** Every thread started and not yet exited, including the ones piscina ended on an abort (and replaced). */
  readonly #live = new Set<Worker>();
  /** Threads ended (an aborted item, an idle timeout) that have not exited yet. */
  readonly #ending = new Set<Worker>();
  /** Every pool made, retired ones included, to seal at shutdown. */
  readonly #created = new Set<PoolState>();
  readonly #logger = new Logger('FanOut');
  readonly #waiting: Waiter[] = [];
  #closed = false;

  constructor(readonly settings: WorkerPoolSettings) {}

  /** How many items of `spec` run at once when a call does not set `concurrency`. */
  threadsOf(spec: WorkerSpec): number {
    return Math.min(spec.threads ?? this.settings.threads, this.settings.maxThreads);
  }

  /** The function the fan-out engine runs for a `workerFn`: each item is one task on the module's pool. */
  fn(spec: WorkerSpec, transfer: boolean): FanOutFn<unknown, unknown> {
    let ready: PoolState | undefined;
    const start = (state: PoolState, input: unknown, ctx: ItemContext, signal: ItemSignal): Promise<unknown> => {
      const index = ctx.index;
      if (transfer && detachedIn(input)) {
        this.#release(state);
        return Promise.reject(new TypeError(workerDetachedMessage(spec.label, index)));
      }
      const task: WorkerTask = { e: spec.exportName, i: index, x: input };
      return state.pool.run(task, { signal, transferList: transfer ? transferables(input) : undefined }).then(
        (value: unknown) => {
          this.#release(state);
          return value;
        },
        (error: unknown) => {
          this.#release(state);
          throw this.#translate(error, spec, index, input, signal);
        },
      );
    };
    const run = (state: PoolState, input: unknown, ctx: ItemContext): Promise<unknown> => {
      // Once closed, a pool must not start a thread for anyone (piscina would start one for a late task).
      if (this.#closed) return Promise.reject(new Error(`${spec.label}: ${WORKERS_CLOSED}`));
      const signal = itemSignal(ctx);
      if (this.#canStart(state)) {
        state.busy++;
        return start(state, input, ctx, signal);
      }
      return this.#wait(state, signal, () => start(state, input, ctx, signal));
    };
    return (input, ctx) => {
      if (ready !== undefined && !ready.retired) return run(ready, input, ctx);
      return this.#pool(spec).then((state) => run((ready = state), input, ctx));
    };
  }

  /** Threads alive: those of the pools, and those ended that have not exited yet (a native call holds them). */
  #liveThreads(): number {
    let count = this.#ending.size;
    for (const state of this.#states) if (!state.retired) count += state.pool.threads.length;
    return count;
  }

  /**
   * An item of this pool may go now: it gets an idle thread, or waits in the pool's own queue (the pool has all its
   * threads), or the pool may start one more thread without going over `fanOut.maxThreads`.
   */
  #canStart(state: PoolState): boolean {
    const pool = state.pool;
    return (
      pool.idleThreads > 0 ||
      pool.threads.length >= pool.options.maxThreads ||
      this.#liveThreads() < this.settings.maxThreads
    );
  }

  /**
   * Waits for a thread, then runs `go` (at once, inside `#pump`: the thread it starts is counted before the next
   * waiter is looked at) with the item counted on its pool (`busy`).
   */
  #wait(state: PoolState, signal: ItemSignal, go: () => Promise<unknown>): Promise<unknown> {
    if (signal.aborted) return Promise.reject(signal.reason);
    const waiting = new Promise<unknown>((resolve, reject) => {
      const waiter: Waiter = {
        state,
        resolve: () => resolve(go()),
        reject,
        signal,
        onAbort: () => {
          const at = this.#waiting.indexOf(waiter);
          if (at !== -1) {
            this.#waiting.splice(at, 1);
            state.waiting--;
          }
          reject(signal.reason);
        },
      };
      signal.addEventListener('abort', waiter.onAbort);
      this.#waiting.push(waiter);
      state.waiting++;
    });
    this.#pump();
    return waiting;
  }

  #release(state: PoolState): void {
    state.busy--;
    if (this.#waiting.length !== 0) this.#pump();
  }

  /**
   * Hands threads to waiting items, oldest first (an item that can go does not wait behind one that cannot). When
   * an item still needs a new thread and `maxThreads` are alive, a pool with no item running or waiting is retired
   * (its threads end; a later item of its module starts a new pool).
   */
  #pump(): void {
    let blocked: PoolState | undefined;
    for (let i = 0; i < this.#waiting.length;) {
      const waiter = this.#waiting[i];
      if (!this.#closed && !this.#canStart(waiter.state)) {
        blocked ??= waiter.state;
        i++;
        continue;
      }
      this.#waiting.splice(i, 1);
      waiter.state.waiting--;
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      if (this.#closed) waiter.reject(new Error(WORKERS_CLOSED));
      else {
        waiter.state.busy++;
        waiter.resolve();
      }
    }
    if (blocked !== undefined) this.#retireIdle(blocked);
  }

  #retireIdle(except: PoolState): void {
    for (const state of this.#states) {
      if (state === except || state.busy !== 0 || state.waiting !== 0 || state.pool.threads.length === 0) continue;
      state.retired = true;
      this.#states.delete(state);
      // One key has one pool in service at a time: this one.
      this.#pools.delete(state.key);
      state.pool.options.minThreads = 0;
      state.pool.options.maxThreads = 0;
      void state.pool.destroy().catch(noop);
      return;
    }
  }

  /**
   * Shutdown has begun: no pool starts a thread from now on, not even to replace one that an aborted item ends
   * (piscina replaces a terminated thread up to `minThreads` and starts one for a queued task up to `maxThreads`;
   * both are set to 0 here, before the items still running are cancelled). Idempotent.
   */
  seal(): void {
    this.#closed = true;
    for (const { pool } of this.#created) {
      pool.options.minThreads = 0;
      pool.options.maxThreads = 0;
    }
    for (const waiter of this.#waiting.splice(0)) {
      waiter.state.waiting--;
      waiter.signal.removeEventListener('abort', waiter.onAbort);
      waiter.reject(new Error(WORKERS_CLOSED));
    }
  }

  /**
   * Seals the pools, destroys them (items still running are ended with their threads) and waits until every thread
   * they ever started has exited, including threads ended earlier that are still finishing a native call.
   */
  async close(): Promise<void> {
    this.seal();
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(
      pools.map(async (pending) => {
        const state = await pending.catch(() => undefined);
        if (state === undefined) return;
        const pool = state.pool;
        for (const worker of pool.threads) this.#track(worker, false);
        await pool.destroy();
      }),
    );
    await Promise.all(
      [...this.#live].map(
        (worker) => new Promise<void>((resolve) => (worker.threadId === -1 ? resolve() : worker.once('exit', resolve))),
      ),
    );
  }

  /**
   * Counts a thread until it exits (piscina reports a thread on `workerCreate` only once it is ready, and on
   * `workerDestroy` when it ends it, ready or not); `ending`: ended, and counted against `maxThreads` until it exits.
   */
  #track(worker: Worker | undefined, ending: boolean): void {
    if (worker === undefined || worker.threadId === -1) return;
    if (ending && !this.#ending.has(worker)) this.#ending.add(worker);
    if (this.#live.has(worker)) return;
    this.#live.add(worker);
    worker.once('exit', () => {
      this.#live.delete(worker);
      if (this.#ending.delete(worker)) this.#pump();
    });
  }

  #pool(spec: WorkerSpec): Promise<PoolState> {
    const real = realModulePath(spec.module);
    const key = real ?? spec.module;
    let pending = this.#pools.get(key);
    if (pending === undefined) {
      pending = this.#create(spec, key, real);
      this.#pools.set(key, pending);
      // A failed creation (a missing module) is not kept: the next call tries again.
      pending.catch(() => this.#pools.get(key) === pending && this.#pools.delete(key));
    }
    const threads = this.threadsOf(spec);
    return pending.then((state) => {
      // A workerFn that asks for more threads than the pool has grows it (never beyond fanOut.maxThreads).
      if (!this.#closed && !state.retired && state.pool.options.maxThreads < threads) {
        state.pool.options.maxThreads = threads;
      }
      return state;
    });
  }

  async #create(spec: WorkerSpec, key: string, real: string | undefined): Promise<PoolState> {
    if (this.#closed) throw new Error(`${spec.label}: ${WORKERS_CLOSED}`);
    if (real === undefined) {
      const path = fileURLToPath(spec.module);
      const source = path.replace(/\.(c|m)?js$/, (_, kind: string | undefined) => `.${kind ?? ''}ts`);
      throw new Error(workerModuleMissingMessage(spec.label, path, source !== path && existsSync(source)));
    }
    const entry = join((here ??= callerDirectory('its worker entry file')), ENTRY_FILE);
    if (!existsSync(entry)) throw new Error(workerEntryMissingMessage(entry));
    let Pool: typeof Piscina;
    try {
      ({ Piscina: Pool } = await import('piscina'));
    } catch (error) {
      throw new Error(piscinaMissingMessage(spec.label, errorMessage(error)));
    }
    if (this.#closed) throw new Error(`${spec.label}: ${WORKERS_CLOSED}`);
    const { idleTimeout, resourceLimits } = this.settings;
    const pool = new Pool({
      filename: entry,
      workerData: { module: pathToFileURL(real).href },
      minThreads: 0,
      maxThreads: this.threadsOf(spec),
      idleTimeout,
      resourceLimits,
    });
    // piscina emits 'error' for a result that arrives after its item was aborted (harmless: the item is settled
    // already), and for a thread that fails while idle: without a listener, either would crash the process.
    pool.on('error', (error: unknown) => {
      const message = `${spec.label}: worker pool: ${errorMessage(error)}`;
      if (message.includes('Unexpected message from Worker')) this.#logger.debug(message);
      else this.#logger.warn(message);
    });
    // 'workerDestroy' also reports threads ended before they were ever ready (never seen by 'workerCreate').
    pool.on('workerCreate', (handle: object) => this.#track(workerOf(handle), false));
    pool.on('workerDestroy', (handle: object) => this.#track(workerOf(handle), true));
    const state: PoolState = { pool, key, busy: 0, waiting: 0, retired: false };
    this.#created.add(state);
    this.#states.add(state);
    return state;
  }

  #translate(error: unknown, spec: WorkerSpec, index: number, input: unknown, signal: ItemSignal): unknown {
    // Aborted (timeout, parent signal, a sibling's failure, shutdown): the engine has the reason already.
    if (signal.aborted) return signal.reason;
    if (isSerialisedError(error)) return revive(error);
    const name = isError(error) ? error.name : undefined;
    if (name === 'DataCloneError' && !canClone(input)) {
      return new TypeError(workerCloneMessage(spec.label, index, errorMessage(error)));
    }
    // Not from the function (its failures are marked): the thread failed once it returned, which is posting the
    // result back (its uncaught DataCloneError reaches here as an empty object), or the module ended the thread.
    if (name === undefined || name === 'DataCloneError') {
      return new TypeError(workerResultMessage(spec.label, index, describeValue(error)));
    }
    // The thread died under the item (process.exit, out of memory, a crash): name the function, keep the code.
    const died = new Error(workerDiedMessage(spec.label, index, errorMessage(error)), { cause: error });
    const code = (error as { code?: unknown }).code;
    if (code !== undefined) (died as Error & { code: unknown }).code = code;
    return died;
  }
}
