import { Logger } from '@nestjs/common';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { Piscina } from 'piscina';
import { callerDirectory } from '../../utils/caller-directory.js';
import { describeValue, errorMessage, isError } from '../../utils/describe.js';
import {
  WORKERS_CLOSED,
  piscinaMissingMessage,
  workerCloneMessage,
  workerEntryMissingMessage,
  workerModuleMissingMessage,
  workerResultMessage,
} from '../fan-out.messages.js';
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

/** An item's error as the caller sees it: the worker's class name (a built-in class where it was one) and message. */
function rebuild(serialised: SerialisedError): Error {
  const { name, message, stack, code } = serialised;
  const error = new (BUILT_INS[name] ?? Error)(message);
  if (error.name !== name) Object.defineProperty(error, 'name', { value: name, configurable: true, writable: true });
  const frames = stack.split('\n').filter((line) => line.trimStart().startsWith('at '));
  error.stack = frames.length === 0 ? `${name}: ${message}` : `${name}: ${message}\n${frames.join('\n')}`;
  if (code !== undefined) (error as Error & { code: unknown }).code = code;
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

/**
 * @internal The worker-thread pools of one `FanOut`: one piscina pool per worker module, `threads` threads each,
 * created when the module's first item runs and shared by every call. `close()` destroys them and waits until every
 * thread they ever started has exited.
 */
export class WorkerPools {
  readonly #pools = new Map<string, Promise<Piscina>>();
  /** Every thread started and not yet exited, including the ones piscina ended on an abort (and replaced). */
  readonly #live = new Set<Worker>();
  /** Every pool made, to seal at shutdown. */
  readonly #created = new Set<Piscina>();
  readonly #logger = new Logger('FanOut');
  #closed = false;

  constructor(readonly threads: number) {}

  /** The function the fan-out engine runs for a `workerFn`: each item is one task on the module's pool. */
  fn(spec: WorkerSpec, transfer: boolean): FanOutFn<unknown, unknown> {
    let ready: Piscina | undefined;
    const run = (pool: Piscina, input: unknown, ctx: ItemContext): Promise<unknown> => {
      // Once closed, a pool must not start a thread for anyone (piscina would start one for a late task).
      if (this.#closed) return Promise.reject(new Error(`${spec.label}: ${WORKERS_CLOSED}`));
      const signal = ctx.signal;
      const index = ctx.index;
      const task: WorkerTask = { e: spec.exportName, i: index, x: input };
      return pool
        .run(task, { signal, transferList: transfer ? transferables(input) : undefined })
        .catch((error: unknown) => {
          throw this.#translate(error, spec, index, input, signal);
        });
    };
    return (input, ctx) => {
      if (ready !== undefined) return run(ready, input, ctx);
      return this.#pool(spec).then((pool) => run((ready = pool), input, ctx));
    };
  }

  /**
   * Shutdown has begun: no pool starts a thread from now on, not even to replace one that an aborted item ends
   * (piscina replaces a terminated thread up to `minThreads` and starts one for a queued task up to `maxThreads`;
   * both are set to 0 here, before the items still running are cancelled). Idempotent.
   */
  seal(): void {
    this.#closed = true;
    for (const pool of this.#created) {
      pool.options.minThreads = 0;
      pool.options.maxThreads = 0;
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
        const pool = await pending.catch(() => undefined);
        if (pool === undefined) return;
        for (const worker of pool.threads) this.#track(worker);
        await pool.destroy();
      }),
    );
    await Promise.all(
      [...this.#live].map(
        (worker) => new Promise<void>((resolve) => (worker.threadId === -1 ? resolve() : worker.once('exit', resolve))),
      ),
    );
  }

  /** Counts a thread until it exits (piscina reports a thread on `workerCreate` only once it is ready). */
  #track(worker: Worker | undefined): void {
    if (worker === undefined || worker.threadId === -1 || this.#live.has(worker)) return;
    this.#live.add(worker);
    worker.once('exit', () => this.#live.delete(worker));
  }

  #pool(spec: WorkerSpec): Promise<Piscina> {
    let pending = this.#pools.get(spec.module);
    if (pending === undefined) {
      pending = this.#create(spec);
      this.#pools.set(spec.module, pending);
      // A failed creation (a missing module) is not kept: the next call tries again.
      pending.catch(() => this.#pools.get(spec.module) === pending && this.#pools.delete(spec.module));
    }
    return pending;
  }

  async #create(spec: WorkerSpec): Promise<Piscina> {
    if (this.#closed) throw new Error(`${spec.label}: ${WORKERS_CLOSED}`);
    const path = fileURLToPath(spec.module);
    if (!existsSync(path)) {
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
    const pool = new Pool({
      filename: entry,
      workerData: { module: spec.module },
      minThreads: this.threads,
      maxThreads: this.threads,
    });
    // piscina emits 'error' for a result that arrives after its item was aborted (harmless: the item is settled
    // already), and for a thread that fails while idle: without a listener, either would crash the process.
    pool.on('error', (error: unknown) => {
      const message = `${spec.label}: worker pool: ${errorMessage(error)}`;
      if (message.includes('Unexpected message from Worker')) this.#logger.debug(message);
      else this.#logger.warn(message);
    });
    // 'workerDestroy' also reports threads ended before they were ever ready (never seen by 'workerCreate').
    pool.on('workerCreate', (handle: object) => this.#track(workerOf(handle)));
    pool.on('workerDestroy', (handle: object) => this.#track(workerOf(handle)));
    this.#created.add(pool);
    return pool;
  }

  #translate(error: unknown, spec: WorkerSpec, index: number, input: unknown, signal: AbortSignal): unknown {
    // Aborted (timeout, parent signal, a sibling's failure, shutdown): the engine has the reason already.
    if (signal.aborted) return signal.reason;
    if (isSerialisedError(error)) return 'value' in error ? error.value : rebuild(error);
    const name = isError(error) ? error.name : undefined;
    if (name === 'DataCloneError' && !canClone(input)) {
      return new TypeError(workerCloneMessage(spec.label, index, errorMessage(error)));
    }
    // Not from the function (its failures are marked): the thread failed once it returned, which is posting the
    // result back (its uncaught DataCloneError reaches here as an empty object), or the module ended the thread.
    if (name === undefined || name === 'DataCloneError') {
      return new TypeError(workerResultMessage(spec.label, index, describeValue(error)));
    }
    return error;
  }
}
