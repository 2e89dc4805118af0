import { availableParallelism } from 'node:os';
import type { ResourceLimits } from 'node:worker_threads';
import { ConcurrencyOptionsError } from '../errors/concurrency-options.error.js';
import { describeValue } from '../utils/describe.js';
import type { FanOutModuleOptions } from './interfaces/fan-out-module-options.interface.js';
import type { FanOutOptions } from './interfaces/fan-out-options.interface.js';
import { invalidOptionMessage } from './fan-out.messages.js';

/** How long (ms) an idle worker thread lives by default. */
export const DEFAULT_IDLE_TIMEOUT = 10_000;

/** The options of one call after validation, every default filled in. Internal. */
export interface ResolvedFanOutOptions {
  concurrency: number;
  ordered: boolean;
  timeout: number;
  throwOnTimeout: boolean;
  signal: AbortSignal | undefined;
  transfer: boolean;
}

function number(method: string, option: string, value: unknown, min: number, integer: boolean): number {
  const expected = `${integer ? 'an integer' : 'a number'} ${integer ? `>= ${min}` : `> ${min}`} (or Infinity)`;
  if (typeof value !== 'number' || Number.isNaN(value)) {
    throw new TypeError(invalidOptionMessage(method, option, expected, value));
  }
  const ok = integer ? value >= min && (value === Infinity || Number.isInteger(value)) : value > min;
  if (!ok) throw new RangeError(invalidOptionMessage(method, option, expected, value));
  return value;
}

/**
 * Validates the options of `map` / `settle` / `stream` and the function, before any item runs. Throws a `TypeError`
 * (wrong type) or a `RangeError` (out of range) naming the option.
 */
export function resolveFanOutOptions(
  method: 'map' | 'settle' | 'stream' | 'stream$',
  inputs: unknown,
  fn: unknown,
  opts: FanOutOptions | undefined,
  defaults: Required<FanOutModuleOptions>,
): ResolvedFanOutOptions {
  if (
    inputs == null ||
    (typeof (inputs as Iterable<unknown>)[Symbol.iterator] !== 'function' &&
      typeof (inputs as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function')
  ) {
    throw new TypeError(invalidOptionMessage(method, 'inputs', 'an array, an iterable or an async iterable', inputs));
  }
  if (typeof fn !== 'function') throw new TypeError(invalidOptionMessage(method, 'fn', 'a function', fn));
  if (opts !== undefined && (opts === null || typeof opts !== 'object')) {
    throw new TypeError(invalidOptionMessage(method, 'opts', 'an object of FanOutOptions', opts));
  }
  const o = opts ?? {};
  const concurrency =
    o.concurrency === undefined ? defaults.concurrency : number(method, 'concurrency', o.concurrency, 1, true);
  const timeout = o.timeout === undefined ? defaults.timeout : number(method, 'timeout', o.timeout, 0, false);
  if (o.ordered !== undefined && typeof o.ordered !== 'boolean') {
    throw new TypeError(invalidOptionMessage(method, 'ordered', 'a boolean', o.ordered));
  }
  if (o.onTimeout !== undefined && o.onTimeout !== 'throw' && o.onTimeout !== 'skip') {
    throw new TypeError(invalidOptionMessage(method, 'onTimeout', `'throw' or 'skip'`, o.onTimeout));
  }
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) {
    throw new TypeError(invalidOptionMessage(method, 'signal', 'an AbortSignal', o.signal));
  }
  if (o.transfer !== undefined && typeof o.transfer !== 'boolean') {
    throw new TypeError(invalidOptionMessage(method, 'transfer', 'a boolean', o.transfer));
  }
  return {
    concurrency,
    timeout,
    ordered: o.ordered ?? true,
    throwOnTimeout: (o.onTimeout ?? (method === 'map' ? 'throw' : 'skip')) === 'throw',
    signal: o.signal,
    transfer: o.transfer ?? false,
  };
}

const RESOURCE_LIMITS = ['maxOldGenerationSizeMb', 'maxYoungGenerationSizeMb', 'codeRangeSizeMb', 'stackSizeMb'];

/**
 * The worker-pool options of `forRoot({ fanOut })` (`maxThreads`, `idleTimeout`, `resourceLimits`), with their
 * defaults; `number` is the module validator's check of an integer option. Throws `ConcurrencyOptionsError`.
 */
export function workerPoolOptions(
  fanOut: Record<string, unknown>,
  number: (option: string, value: unknown, fallback: number) => number,
): Pick<Required<FanOutModuleOptions>, 'maxThreads' | 'idleTimeout' | 'resourceLimits'> {
  const threads = typeof fanOut.threads === 'number' ? fanOut.threads : availableParallelism();
  const limits = fanOut.resourceLimits;
  const expected = `an object with some of ${RESOURCE_LIMITS.join(', ')} (each a number > 0, in MB)`;
  const bad = (option: string, got: unknown): never => {
    throw new ConcurrencyOptionsError(
      option,
      `Invalid ConcurrencyModule option "${option}": expected ${expected}, got ${describeValue(got)}.`,
    );
  };
  if (limits !== undefined) {
    if (limits === null || typeof limits !== 'object' || Array.isArray(limits)) bad('fanOut.resourceLimits', limits);
    for (const [key, value] of Object.entries(limits as object)) {
      if (!RESOURCE_LIMITS.includes(key)) bad(`fanOut.resourceLimits.${key}`, key);
      if (typeof value !== 'number' || !(value > 0) || value === Infinity) bad(`fanOut.resourceLimits.${key}`, value);
    }
  }
  return {
    maxThreads: number('fanOut.maxThreads', fanOut.maxThreads, Math.max(threads, availableParallelism())),
    idleTimeout: number('fanOut.idleTimeout', fanOut.idleTimeout, DEFAULT_IDLE_TIMEOUT),
    resourceLimits: { ...(limits as ResourceLimits | undefined) },
  };
}
