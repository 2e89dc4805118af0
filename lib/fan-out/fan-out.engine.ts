import { TaskAbortedError } from '../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import { isThenable } from '../supervisor/utils/is-thenable.util.js';
import type { ResolvedFanOutOptions } from './fan-out-options.validator.js';
import { CONSUMER_STOPPED, SIBLING_FAILED, SOURCE_FAILED } from './fan-out.messages.js';
import { describeValue } from '../utils/describe.js';
import type { FanOutFn, FanOutInput, ItemContext, Outcome } from './interfaces/fan-out-options.interface.js';
import { ContextCapture } from '../observability/tracing/async-context.js';
import type { ConcurrencyTracer } from '../observability/tracing/concurrency-tracer.js';
import { endFanOutSpan, startFanOutSpan, traceItems } from '../observability/tracing/fan-out-tracing.js';
import type { Span } from '@opentelemetry/api';

/** What a run hands back: `map` values, `settle` outcomes, or `stream` outcomes one by one. */
export const RunMode = { Map: 0, Settle: 1, Stream: 2 } as const;
export type RunMode = (typeof RunMode)[keyof typeof RunMode];

/**
 * The context of one item. Built once per item; the `AbortController` behind `signal` and the `id` string are only
 * created when someone reads them (most items never do), which keeps the per-item cost to one small object.
 */
export class FanOutItemContext implements ItemContext {
  #controller: AbortController | undefined;
  #hook: ((reason: unknown) => void) | undefined;
  readonly #run: string;

  constructor(
    readonly index: number,
    run: string,
  ) {
    this.#run = run;
  }

  get id(): string {
    return `${this.#run}:${this.index}`;
  }

  get attempt(): number {
    return 1;
  }

  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }

  static abort(ctx: FanOutItemContext, reason: unknown): void {
    (ctx.#controller ??= new AbortController()).abort(reason);
    ctx.#hook?.(reason);
  }

  /**
   * @internal Calls `fn` once when the item is aborted (at once if it is already): for the worker-thread pools, which
   * need the abort but not an `AbortSignal` (an `AbortController` and its listener per item cost more than the item).
   */
  static listen(ctx: FanOutItemContext, fn: (reason: unknown) => void): void {
    const signal = ctx.#controller?.signal;
    if (signal?.aborted) fn(signal.reason);
    else ctx.#hook = fn;
  }
}

/**
 * One slot of the pool: the item it runs now. Its two callbacks are built once per slot, not per item. A slot whose
 * item timed out is retired (`dead`) and replaced, so a late settlement of the abandoned item is ignored.
 */
class Slot {
  index = 0;
  input: unknown = undefined;
  ctx: FanOutItemContext | undefined = undefined;
  tick = 0;
  dead = false;
  readonly onValue: (value: unknown) => void;
  readonly onError: (reason: unknown) => void;

  constructor(
    run: FanOutRun<unknown, unknown>,
    readonly pos: number,
  ) {
    this.onValue = (value) => run.done(this, true, value);
    this.onError = (reason) => run.done(this, false, reason);
  }
}

interface Waiter<T> {
  resolve: (result: IteratorResult<T>) => void;
  reject: (reason: unknown) => void;
}

const noop = () => {};

/** What the owner of runs (the `FanOut` service) sees of one: for draining and cancelling at shutdown. */
export interface RunHandle {
  readonly id: string;
  cancel(error: unknown, why: string): void;
  /** Counts for observability (the dashboard reads them on its timer; `call-ended` messages carry them). */
  progress(): RunProgress;
}

/** @internal How far a run is: items taken from the input, settled, failed (timeouts included), timed out. */
export interface RunProgress {
  startedAt: number;
  started: number;
  settled: number;
  failed: number;
  timedOut: number;
  /** The number of inputs when they are an array, else undefined (an iterable's length is unknown). */
  total: number | undefined;
}

/** The owner's view of a run's life: `begin` when it starts pulling input (a stream: its first `next()`), `end` once. */
export interface RunHooks {
  begin(run: RunHandle): void;
  end(run: RunHandle): void;
  /** An item failed or timed out (not an item aborted because the run ended). */
  failed?(run: RunHandle, index: number, reason: unknown, timedOut?: boolean): void;
  /** Set when the application traces: a span per call (and per item with `tracing.fanOutItems`). */
  readonly tracer?: ConcurrencyTracer;
}

const NO_HOOKS: RunHooks = { begin: noop, end: noop };
/** The timeout sweep runs `SWEEPS_PER_TIMEOUT` times per timeout: an item times out at most ~2/16 after its deadline. */
const SWEEPS_PER_TIMEOUT = 16;
const MAX_SWEEP_MS = 1000;
/** Ordered streams keep finished-but-not-yet-emitted outcomes in a ring this large at most (else in a Map). */
const MAX_RING = 4096;
/** An unordered stream's outcome queue drops its consumed head once it is this long and half of the array. */
const COMPACT_AT = 1024;

/**
 * An iterator's step as `for await` reads it: a result that is not an object is a `TypeError` (a hand-written
 * cursor that returns `undefined` when exhausted), and throwing `done`/`value` getters throw here, on the pull path.
 */
function readStep<T>(step: IteratorResult<T>): { done: boolean; value: T } {
  if (step === null || (typeof step !== 'object' && typeof step !== 'function')) {
    throw new TypeError(`Iterator result ${describeValue(step)} is not an object`);
  }
  const done = Boolean(step.done);
  return { done, value: done ? (undefined as T) : step.value };
}

/**
 * The one engine behind `map`, `settle` and `stream`: a pull loop that takes the next input only while fewer than
 * `concurrency` items are running (for `stream`: running or finished but not yet consumed), so an endless input
 * works and memory stays flat. Timeouts share one interval per run that sweeps the slots, never a timer per item.
 */
export class FanOutRun<I, O> implements AsyncIterator<Outcome<I, O>>, RunHandle {
  #fn: FanOutFn<I, O>;
  readonly #mode: RunMode;
  readonly #concurrency: number;
  readonly #timeout: number;
  readonly #throwOnTimeout: boolean;
  readonly #ordered: boolean;
  readonly #signal: AbortSignal | undefined;
  readonly #inputs: FanOutInput<I>;
  readonly #hooks: RunHooks;
  /** The caller's async context: every item runs in it, also those started from another item's settlement. */
  readonly #scope: ContextCapture;
  readonly #span: Span | undefined;
  #spanError: { reason: unknown } | undefined;

  // source
  #array: readonly I[] | undefined;
  #iterator: Iterator<I> | AsyncIterator<I> | undefined;
  #async = false;
  #next = 0;
  #sourceDone = false;
  #pulling = false;

  // slots
  readonly #slots: Slot[] = [];
  readonly #idle: Slot[] = [];
  #active = 0;
  #started = false;
  #finished = false;
  // counts for observability: plain increments
  #begunAt = 0;
  #settled = 0;
  #failed = 0;
  #timedOut = 0;

  // timeouts: one interval per run while items run
  readonly #grain: number;
  readonly #ticksPerTimeout: number;
  #tick = 0;
  #timer: ReturnType<typeof setInterval> | undefined;

  // map / settle
  #results: unknown[] = [];
  #resolve: (value: never) => void = noop;
  #reject: (reason: unknown) => void = noop;

  // stream: finished outcomes not yet consumed (`held` of them), and consumers waiting for one
  #held = 0;
  #emit = 0;
  #ring: (Outcome<I, O> | undefined)[] | undefined;
  #map: Map<number, Outcome<I, O>> | undefined;
  #queue: Outcome<I, O>[] = [];
  #queueHead = 0;
  #waiters: Waiter<Outcome<I, O>>[] = [];
  #error: { reason: unknown } | undefined;

  constructor(
    readonly id: string,
    mode: RunMode,
    inputs: FanOutInput<I>,
    fn: FanOutFn<I, O>,
    options: ResolvedFanOutOptions,
    hooks: RunHooks = NO_HOOKS,
  ) {
    this.#mode = mode;
    this.#inputs = inputs;
    this.#fn = fn;
    this.#concurrency = options.concurrency;
    this.#timeout = options.timeout;
    this.#throwOnTimeout = options.throwOnTimeout;
    this.#ordered = options.ordered;
    this.#signal = options.signal;
    this.#hooks = hooks;
    const tracer = hooks.tracer;
    if (tracer === undefined) this.#scope = new ContextCapture();
    else {
      const total = Array.isArray(inputs) ? inputs.length : undefined;
      const span = (this.#span = startFanOutSpan(tracer, mode, total, options.concurrency));
      this.#scope = tracer.with(span, () => new ContextCapture());
      if (tracer.fanOutItems)
        this.#fn = traceItems(tracer, fn as (input: I, ctx: { index: number }) => O) as FanOutFn<I, O>;
    }
    if (Number.isFinite(options.timeout)) {
      this.#grain = Math.min(MAX_SWEEP_MS, Math.max(1, options.timeout / SWEEPS_PER_TIMEOUT));
      this.#ticksPerTimeout = Math.ceil(options.timeout / this.#grain);
    } else {
      this.#grain = 0;
      this.#ticksPerTimeout = Infinity;
    }
    if (mode === RunMode.Stream && this.#ordered) {
      if (this.#concurrency <= MAX_RING) this.#ring = Array.from({ length: this.#concurrency });
      else this.#map = new Map();
    }
  }

  /** `map` / `settle`: runs every item and resolves with the values / outcomes in input order. */
  run(): Promise<unknown[]> {
    return new Promise((resolve, reject) => {
      this.#resolve = resolve as (value: never) => void;
      this.#reject = reject;
      this.#begin();
    });
  }

  /** Stops the run from outside (application shutdown): aborts what runs, the call rejects with `error`. */
  cancel(error: unknown, why: string): void {
    this.#fail(error, (ctx) => new TaskAbortedError(ctx.id, why));
  }

  // ---- the pull loop --------------------------------------------------------------------------------------------

  /** @internal */
  progress(): RunProgress {
    const total = this.#array?.length;
    return {
      startedAt: this.#begunAt,
      started: this.#array === undefined ? this.#settled + this.#active : this.#next,
      settled: this.#settled,
      failed: this.#failed,
      timedOut: this.#timedOut,
      total,
    };
  }

  #begin(): void {
    this.#started = true;
    this.#begunAt = Date.now();
    this.#hooks.begin(this);
    if (this.#finished) return; // cancelled by the owner (after application shutdown)
    const signal = this.#signal;
    if (signal?.aborted) return this.#fail(signal.reason, () => signal.reason);
    signal?.addEventListener('abort', this.#onAbort);
    const inputs = this.#inputs;
    try {
      if (Array.isArray(inputs)) {
        this.#array = inputs;
        // Sized once: filled by index as items settle, an empty array grown one element at a time cost 2-3x the
        // whole per-item overhead of a trivial item (1e6 items: 526 vs 184 ns/item, bench/fan-out).
        // oxlint-disable-next-line unicorn/no-new-array -- a length, on purpose: Array.from would fill it first
        if (this.#mode !== RunMode.Stream) this.#results = new Array(inputs.length);
      } else if (typeof (inputs as AsyncIterable<I>)[Symbol.asyncIterator] === 'function') {
        this.#iterator = (inputs as AsyncIterable<I>)[Symbol.asyncIterator]();
        this.#async = true;
      } else this.#iterator = (inputs as Iterable<I>)[Symbol.iterator]();
    } catch (error) {
      return this.#fail(error, (ctx) => new TaskAbortedError(ctx.id, SOURCE_FAILED));
    }
    this.#fill();
  }

  #fill(): void {
    const limit = this.#concurrency;
    while (!this.#finished && !this.#sourceDone && this.#active + this.#held < limit) {
      const array = this.#array;
      if (array !== undefined) {
        const index = this.#next;
        if (index >= array.length) {
          this.#sourceDone = true;
          break;
        }
        this.#next = index + 1;
        this.#start(array[index], index);
      } else if (!this.#async) {
        let done: boolean;
        let value: I;
        try {
          ({ done, value } = readStep((this.#iterator as Iterator<I>).next()));
        } catch (error) {
          return this.#onPullFailed(error);
        }
        if (done) {
          this.#sourceDone = true;
          break;
        }
        this.#start(value, this.#next++);
      } else {
        if (this.#pulling) return;
        this.#pulling = true;
        try {
          Promise.resolve((this.#iterator as AsyncIterator<I>).next()).then(this.#onPulled, this.#onPullFailed);
        } catch (error) {
          this.#onPullFailed(error);
        }
        return;
      }
    }
    if (this.#sourceDone && this.#active === 0) this.#complete();
  }

  /** Runs inside a promise reaction: nothing may throw out of it (that would be an unhandled rejection). */
  readonly #onPulled = (step: unknown): void => {
    this.#pulling = false;
    if (this.#finished) return;
    let done: boolean;
    let value: I;
    try {
      ({ done, value } = readStep(step as IteratorResult<I>));
    } catch (error) {
      return this.#onPullFailed(error);
    }
    if (done) this.#sourceDone = true;
    else this.#start(value, this.#next++);
    this.#fill();
  };

  readonly #onPullFailed = (error: unknown): void => {
    this.#pulling = false;
    // The source failed: it is not closed (as `for await` does not call `return()` after its own `next()` threw).
    this.#sourceDone = true;
    this.#fail(error, (ctx) => new TaskAbortedError(ctx.id, SOURCE_FAILED));
  };

  #start(input: I, index: number): void {
    const slot = this.#idle.pop() ?? this.#newSlot();
    const ctx = new FanOutItemContext(index, this.id);
    slot.index = index;
    slot.input = input;
    slot.ctx = ctx;
    slot.tick = this.#tick;
    this.#active++;
    if (this.#timer === undefined && this.#grain !== 0) this.#timer = setInterval(this.#sweep, this.#grain);
    let result: O | PromiseLike<O>;
    try {
      const scope = this.#scope;
      result = scope.matches() ? this.#fn(input, ctx) : scope.runInAsyncScope(this.#fn, this, input, ctx);
      if (isThenable(result)) {
        // A foreign thenable goes through Promise.resolve: it may call back twice, or throw from then().
        (result instanceof Promise ? result : Promise.resolve(result)).then(slot.onValue, slot.onError);
        return;
      }
    } catch (error) {
      this.#settle(slot, false, error);
      return;
    }
    this.#settle(slot, true, result);
  }

  #newSlot(): Slot {
    const slot = new Slot(this as FanOutRun<unknown, unknown>, this.#slots.length);
    this.#slots.push(slot);
    return slot;
  }

  /** @internal A slot's item settled asynchronously. */
  done(slot: Slot, ok: boolean, value: unknown): void {
    if (slot.dead || this.#finished) return;
    this.#settle(slot, ok, value);
    this.#fill();
  }

  #settle(slot: Slot, ok: boolean, value: unknown): void {
    // The run may have ended while fn ran (it aborted the parent signal, then returned): its outcome is dropped.
    if (this.#finished) return;
    const index = slot.index;
    const input = slot.input as I;
    slot.ctx = undefined;
    slot.input = undefined;
    this.#active--;
    this.#idle.push(slot);
    this.#settled++;
    if (!ok) {
      this.#failed++;
      this.#hooks.failed?.(this, index, value);
    }
    switch (this.#mode) {
      case RunMode.Map:
        if (ok) this.#results[index] = value;
        else this.#fail(value, (ctx) => new TaskAbortedError(ctx.id, SIBLING_FAILED));
        return;
      case RunMode.Settle:
        this.#results[index] = ok
          ? { status: 'fulfilled', value, input, index }
          : { status: 'rejected', reason: value, input, index };
        return;
      default:
        this.#hold(
          ok
            ? { status: 'fulfilled', value: value as O, input, index }
            : { status: 'rejected', reason: value, input, index },
        );
    }
  }

  // ---- timeouts -------------------------------------------------------------------------------------------------

  readonly #sweep = (): void => {
    const tick = ++this.#tick;
    if (this.#active === 0) return this.#stopTimer();
    const slots = this.#slots;
    const limit = this.#ticksPerTimeout;
    let freed = false;
    for (let i = 0; i < slots.length && !this.#finished; i++) {
      const slot = slots[i];
      if (slot.ctx !== undefined && tick - slot.tick > limit) {
        this.#timeOut(slot);
        freed = true;
      }
    }
    if (freed) this.#fill();
  };

  #timeOut(slot: Slot): void {
    const ctx = slot.ctx as FanOutItemContext;
    const index = slot.index;
    const input = slot.input as I;
    const error = new TaskTimeoutError(this.#timeout, ctx.id);
    FanOutItemContext.abort(ctx, error);
    slot.dead = true;
    slot.ctx = undefined;
    slot.input = undefined;
    const fresh = new Slot(this as FanOutRun<unknown, unknown>, slot.pos);
    this.#slots[slot.pos] = fresh;
    this.#idle.push(fresh);
    this.#active--;
    this.#settled++;
    this.#failed++;
    this.#timedOut++;
    this.#hooks.failed?.(this, index, error, true);
    if (this.#throwOnTimeout) this.#fail(error, (other) => new TaskAbortedError(other.id, SIBLING_FAILED));
    else if (this.#mode === RunMode.Map) this.#results[index] = undefined;
    else if (this.#mode === RunMode.Settle) this.#results[index] = { status: 'rejected', reason: error, input, index };
    else this.#hold({ status: 'rejected', reason: error, input, index });
  }

  #stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  // ---- endings --------------------------------------------------------------------------------------------------

  readonly #onAbort = (): void => {
    const reason = this.#signal?.reason;
    this.#fail(reason, () => reason);
  };

  #complete(): void {
    if (this.#finished) return;
    this.#end();
    if (this.#mode !== RunMode.Stream) return this.#resolve(this.#results as never);
    this.#drain();
  }

  /** Fails the run: aborts the items in flight (each with `itemReason(ctx)`), stops pulling, rejects with `error`. */
  #fail(error: unknown, itemReason: (ctx: FanOutItemContext) => unknown): void {
    if (this.#finished) return;
    if (this.#span !== undefined) this.#spanError = { reason: error };
    this.#stop(itemReason);
    if (this.#mode !== RunMode.Stream) return this.#reject(error);
    const waiters = this.#waiters.splice(0);
    if (waiters.length === 0) this.#error = { reason: error };
    else {
      waiters[0].reject(error);
      for (let i = 1; i < waiters.length; i++) waiters[i].resolve({ value: undefined, done: true });
    }
  }

  #stop(itemReason: (ctx: FanOutItemContext) => unknown): void {
    this.#end();
    for (const slot of this.#slots) if (slot.ctx !== undefined) FanOutItemContext.abort(slot.ctx, itemReason(slot.ctx));
    this.#closeSource();
    this.#results = [];
    this.#clearHeld();
  }

  #end(): void {
    this.#finished = true;
    this.#stopTimer();
    this.#signal?.removeEventListener('abort', this.#onAbort);
    if (this.#span !== undefined) {
      const { started, failed } = this.progress();
      endFanOutSpan(this.#hooks.tracer!, this.#span, started, failed, this.#spanError);
    }
    this.#hooks.end(this);
  }

  #closeSource(): void {
    const iterator = this.#iterator;
    if (iterator === undefined || this.#sourceDone) return;
    this.#sourceDone = true;
    try {
      const closed = iterator.return?.();
      if (this.#async) Promise.resolve(closed).catch(noop);
    } catch {
      // a throwing return() must not hide why the run stopped
    }
  }

  // ---- stream: the consumer side --------------------------------------------------------------------------------

  #hold(outcome: Outcome<I, O>): void {
    this.#held++;
    if (this.#ring !== undefined) this.#ring[outcome.index % this.#ring.length] = outcome;
    else if (this.#map !== undefined) this.#map.set(outcome.index, outcome);
    else this.#queue.push(outcome);
    if (this.#waiters.length !== 0) this.#drain();
  }

  /** The next outcome the consumer may have (the head in ordered mode), or undefined. */
  #take(): Outcome<I, O> | undefined {
    if (this.#held === 0) return undefined;
    let outcome: Outcome<I, O> | undefined;
    const ring = this.#ring;
    if (ring !== undefined) {
      const at = this.#emit % ring.length;
      outcome = ring[at];
      if (outcome !== undefined) ring[at] = undefined;
    } else if (this.#map !== undefined) {
      outcome = this.#map.get(this.#emit);
      if (outcome !== undefined) this.#map.delete(this.#emit);
    } else {
      const queue = this.#queue;
      const head = this.#queueHead;
      outcome = queue[head];
      queue[head] = undefined as never;
      this.#queueHead = head + 1;
      // Compact once the consumed part is the larger half: a consumer that always lags (the queue never empties)
      // must not grow the array forever. Amortised O(1) per outcome.
      if (this.#queueHead === queue.length) queue.length = this.#queueHead = 0;
      else if (this.#queueHead >= COMPACT_AT && 2 * this.#queueHead >= queue.length) {
        this.#queue = queue.slice(this.#queueHead);
        this.#queueHead = 0;
      }
    }
    if (outcome !== undefined) {
      this.#held--;
      this.#emit++;
    }
    return outcome;
  }

  /** Hands finished outcomes to waiting consumers; tells them the stream is done once nothing is left. */
  #drain(): void {
    const waiters = this.#waiters;
    while (waiters.length !== 0) {
      const outcome = this.#take();
      if (outcome !== undefined) (waiters.shift() as Waiter<Outcome<I, O>>).resolve({ value: outcome, done: false });
      else if (this.#finished && this.#held === 0) {
        for (const waiter of waiters.splice(0)) waiter.resolve({ value: undefined, done: true });
      } else return;
    }
  }

  #clearHeld(): void {
    this.#held = 0;
    this.#ring?.fill(undefined);
    this.#map?.clear();
    this.#queue = [];
    this.#queueHead = 0;
  }

  next(): Promise<IteratorResult<Outcome<I, O>>> {
    if (!this.#started) this.#begin();
    const outcome = this.#take();
    if (outcome !== undefined) {
      this.#fill();
      return Promise.resolve({ value: outcome, done: false });
    }
    const error = this.#error;
    if (error !== undefined) {
      this.#error = undefined;
      return Promise.reject(error.reason);
    }
    if (this.#finished && this.#held === 0) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** `break` / `throw` out of `for await`: aborts the items in flight, stops pulling and closes the input. */
  return(): Promise<IteratorResult<Outcome<I, O>>> {
    this.#started = true;
    this.#error = undefined;
    if (!this.#finished) this.#stop((ctx) => new TaskAbortedError(ctx.id, CONSUMER_STOPPED));
    this.#clearHeld();
    for (const waiter of this.#waiters.splice(0)) waiter.resolve({ value: undefined, done: true });
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}
