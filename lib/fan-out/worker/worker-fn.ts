import { isAbsolute } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describeValue } from '../../utils/describe.js';
import {
  invalidWorkerExportMessage,
  invalidWorkerModuleMessage,
  invalidWorkerOptionMessage,
  workerCalledDirectlyMessage,
  workerLabel,
} from '../fan-out.messages.js';
import type { ItemContext } from '../interfaces/fan-out-options.interface.js';

/**
 * A function that lives in a module and runs on a worker thread (from `workerFn()`). Pass it to `FanOut.map`,
 * `settle`, `stream` or `stream$` where they take a function; calling it yourself rejects.
 */
export interface WorkerFn<I, O> {
  (input: I, ctx: ItemContext): Promise<O>;
  /** The worker module, as a `file:` URL. */
  readonly module: string;
  /** The export called for each item. */
  readonly exportName: string;
}

/** Options of one `workerFn()`. */
export interface WorkerFnOptions {
  /**
   * Threads for this function: its module's pool grows to this many threads (at most `fanOut.maxThreads`), and a call
   * that does not set `concurrency` runs this many of its items at once. An integer >= 1. Default `fanOut.threads`.
   */
  threads?: number;
}

/** @internal Where a worker function lives. */
export interface WorkerSpec {
  /** A `file:` URL. */
  readonly module: string;
  readonly exportName: string;
  /** `workerFn(module, exportName)`, for messages. */
  readonly label: string;
  /** `WorkerFnOptions.threads`, when set. */
  readonly threads: number | undefined;
}

const specs = new WeakMap<object, WorkerSpec>();

function moduleUrl(module: unknown): string {
  if (module instanceof URL) {
    if (module.protocol === 'file:') return module.href;
  } else if (typeof module === 'string') {
    if (module.startsWith('file:')) return new URL(module).href;
    if (isAbsolute(module)) return pathToFileURL(module).href;
  }
  throw new TypeError(invalidWorkerModuleMessage(describeValue(module instanceof URL ? module.href : module)));
}

/**
 * Names the function `exportName` of the JavaScript module `module` (a `file:` URL or an absolute path) as work for a
 * worker thread: `FanOut.map(inputs, workerFn(new URL('./hash.worker.js', <this module's URL>)))`. The export is called
 * as `(input, { index })` on a thread of the module's pool (one pool per real path of the file; `options.threads` or
 * `fanOut.threads` threads, started on demand, ended when idle and closed with the app); inputs and results cross
 * the thread by structured clone. Nothing is loaded here: the module is
 * imported on each thread when its first item runs, and a missing module or export fails the items naming both.
 */
export function workerFn<I = unknown, O = unknown>(
  module: URL | string,
  exportName = 'default',
  options?: WorkerFnOptions,
): WorkerFn<I, O> {
  const url = moduleUrl(module);
  if (typeof exportName !== 'string' || exportName === '') {
    throw new TypeError(invalidWorkerExportMessage(url, describeValue(exportName)));
  }
  const label = workerLabel(url, exportName);
  if (options !== undefined && (options === null || typeof options !== 'object')) {
    throw new TypeError(invalidWorkerOptionMessage(label, 'options', 'an object of WorkerFnOptions', options));
  }
  const threads = options?.threads;
  if (threads !== undefined && (typeof threads !== 'number' || !Number.isInteger(threads) || threads < 1)) {
    const message = invalidWorkerOptionMessage(label, 'threads', 'an integer >= 1', threads);
    throw typeof threads === 'number' && !Number.isNaN(threads) ? new RangeError(message) : new TypeError(message);
  }
  const spec: WorkerSpec = { module: url, exportName, label, threads };
  const fn = (() => Promise.reject(new Error(workerCalledDirectlyMessage(spec.label)))) as unknown as WorkerFn<I, O>;
  Object.defineProperties(fn, {
    name: { value: spec.label },
    module: { value: url, enumerable: true },
    exportName: { value: exportName, enumerable: true },
  });
  specs.set(fn, spec);
  return fn;
}

/** @internal The spec of a function made by `workerFn()`, else undefined. */
export function workerSpecOf(fn: unknown): WorkerSpec | undefined {
  return typeof fn === 'function' ? specs.get(fn) : undefined;
}
