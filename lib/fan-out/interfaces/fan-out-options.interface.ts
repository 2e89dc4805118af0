import type { TaskContext } from '../../supervisor/interfaces/task.interface.js';

/** Options of one `FanOut.map()` / `settle()` / `stream()` call. Omitted values come from `forRoot({ fanOut })`. */
export interface FanOutOptions {
  /** Items running at once (an integer >= 1, or `Infinity`). Default: `fanOut.concurrency` of the module, else 16. */
  concurrency?: number;
  /** `true` (default): results in input order. `false`: `stream()` yields outcomes as items complete. */
  ordered?: boolean;
  /** Per-item timeout in ms (> 0, `Infinity` allowed). Default: `fanOut.timeout` of the module, else 5000. */
  timeout?: number;
  /**
   * What a timed-out item does. `'throw'`: the whole call rejects with `TaskTimeoutError` (Elixir's `:exit`; the
   * default for `map`). `'skip'`: the item becomes a rejected outcome whose reason is `TaskTimeoutError` (Elixir's
   * `:kill_task`; the default for `settle` and `stream`; in `map` its result is `undefined`). Either way the item's
   * `signal` is aborted with that `TaskTimeoutError`.
   */
  onTimeout?: 'throw' | 'skip';
  /** A parent signal: aborting it aborts every item's signal and the call rejects with `signal.reason`. */
  signal?: AbortSignal;
  /**
   * `workerFn` only: move the input's `ArrayBuffer`s to the worker thread instead of copying them (the input itself,
   * the elements of an array input or the own values of an object input; a typed array's buffer when the view covers
   * it whole). The caller can no longer read a moved buffer. Default `false`; no effect on in-process functions.
   */
  transfer?: boolean;
}

/** What the function of `map()` / `settle()` / `stream()` receives for each item. */
export interface ItemContext extends TaskContext {
  /** The input's position (0-based) in the input sequence. */
  index: number;
}

/** How one item ended, with the input it came from. A timed-out item (`onTimeout: 'skip'`) has a `TaskTimeoutError`. */
export type Outcome<I, O> =
  | { status: 'fulfilled'; value: O; input: I; index: number }
  | { status: 'rejected'; reason: unknown; input: I; index: number };

/** The inputs `map()` / `settle()` / `stream()` accept: an array, any iterable or an async iterable. */
export type FanOutInput<I> = Iterable<I> | AsyncIterable<I>;

/** The function run for each item. */
export type FanOutFn<I, O> = (input: I, ctx: ItemContext) => O | Promise<O>;
