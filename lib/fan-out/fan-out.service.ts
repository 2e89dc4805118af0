import { Inject, Injectable, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { Observable } from 'rxjs';
import {
  DEFAULT_FAN_OUT_CONCURRENCY,
  DEFAULT_SHUTDOWN_TIMEOUT,
  DEFAULT_TASK_TIMEOUT,
} from '../concurrency.constants.js';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import { TaskAbortedError } from '../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import type { TaskContext, TaskOutcome } from '../supervisor/interfaces/task.interface.js';
import { Task } from '../supervisor/task.js';
import { FanOutRun, type RunHandle, RunMode } from './fan-out.engine.js';
import { GROUP_FAILED, SHUTDOWN, invalidOptionMessage } from './fan-out.messages.js';
import { resolveFanOutOptions } from './fan-out-options.validator.js';
import type { FanOutModuleOptions } from './interfaces/fan-out-module-options.interface.js';
import type { FanOutFn, FanOutInput, FanOutOptions, Outcome } from './interfaces/fan-out-options.interface.js';

/** The part of the module options `FanOut` reads. */
type FanOutSettings = Pick<ResolvedConcurrencyOptions, 'fanOut' | 'shutdownTimeout'>;

const DEFAULTS: FanOutSettings = {
  fanOut: { concurrency: DEFAULT_FAN_OUT_CONCURRENCY, timeout: DEFAULT_TASK_TIMEOUT },
  shutdownTimeout: DEFAULT_SHUTDOWN_TIMEOUT,
};

function checkTimeout(method: string, timeoutMs: unknown): void {
  if (typeof timeoutMs !== 'number' || Number.isNaN(timeoutMs)) {
    throw new TypeError(invalidOptionMessage(method, 'timeoutMs', 'a number >= 0 (or Infinity)', timeoutMs));
  }
  if (timeoutMs < 0)
    throw new RangeError(invalidOptionMessage(method, 'timeoutMs', 'a number >= 0 (or Infinity)', timeoutMs));
}

function checkTasks(method: string, tasks: unknown): asserts tasks is Task<unknown>[] {
  if (!Array.isArray(tasks) || !tasks.every((task) => task instanceof Task)) {
    throw new TypeError(
      invalidOptionMessage(method, 'tasks', 'an array of Task (from FanOut.async or TaskSupervisor.async)', tasks),
    );
  }
}

/**
 * Fan-out / fan-in (Elixir's `Task.async` + `await_many` / `yield_many`, and `Task.async_stream`): run many pieces of
 * work at once, bounded, and collect every result. Defaults come from `forRoot({ fanOut: { concurrency, timeout } })`.
 *
 * At application shutdown it waits up to `shutdownTimeout` for running `async()` tasks and `map`/`settle`/`stream`
 * calls, then aborts what is left (their signals carry a `TaskAbortedError`; a call still running rejects with it).
 */
@Injectable()
export class FanOut implements OnApplicationShutdown {
  readonly #defaults: Required<FanOutModuleOptions>;
  readonly #shutdownTimeout: number;
  readonly #tasks = new Set<Task<unknown>>();
  readonly #runs = new Set<RunHandle>();
  #seq = 0;

  constructor(@Optional() @Inject(CONCURRENCY_OPTIONS) options?: FanOutSettings) {
    this.#defaults = { ...(options ?? DEFAULTS).fanOut };
    this.#shutdownTimeout = (options ?? DEFAULTS).shutdownTimeout;
  }

  /**
   * Starts `fn` on the next microtask and returns its `Task` (Elixir's `Task.async`). Collect it with `awaitMany`,
   * `yieldMany` or `task.await()`; a failure is kept for the awaiter, never an unhandled rejection.
   */
  async<T>(fn: (ctx: TaskContext) => T | Promise<T>): Task<T> {
    if (typeof fn !== 'function') throw new TypeError(invalidOptionMessage('async', 'fn', 'a function', fn));
    const controller = new AbortController();
    const id = `async-${++this.#seq}`;
    const ctx: TaskContext = { signal: controller.signal, id, attempt: 1 };
    const task = new Task<T>(
      id,
      controller,
      Promise.resolve().then(() => fn(ctx)),
    );
    this.#tasks.add(task as Task<unknown>);
    void task.settled().then(() => this.#tasks.delete(task as Task<unknown>));
    return task;
  }

  /**
   * Waits for every task, with one deadline for the group; resolves with the results in task order. The first failure
   * rejects with its error, the deadline with `TaskTimeoutError`; either way the tasks still running are aborted.
   */
  awaitMany<T>(tasks: Task<T>[], timeoutMs = 5000): Promise<T[]> {
    checkTasks('awaitMany', tasks);
    checkTimeout('awaitMany', timeoutMs);
    return new Promise<T[]>((resolve, reject) => {
      const results: T[] = [];
      let pending = tasks.length;
      let timer: ReturnType<typeof setTimeout> | undefined;
      let over = false;
      const stop = (error: unknown, abortReason: (task: Task<T>) => unknown) => {
        if (over) return;
        over = true;
        clearTimeout(timer);
        for (const task of tasks) if (task.outcome === undefined) task.abort(abortReason(task));
        reject(error);
      };
      if (pending === 0) return resolve(results);
      tasks.forEach((task, i) => {
        void task.settled().then((outcome) => {
          if (over) return;
          if (outcome.status === 'rejected')
            return stop(outcome.reason, (t) => new TaskAbortedError(t.id, GROUP_FAILED));
          results[i] = outcome.value;
          if (--pending === 0) {
            over = true;
            clearTimeout(timer);
            resolve(results);
          }
        });
      });
      if (timeoutMs !== Infinity) {
        timer = setTimeout(() => {
          const error = new TaskTimeoutError(timeoutMs);
          stop(error, () => error);
        }, timeoutMs);
      }
    });
  }

  /**
   * Waits up to `timeoutMs` for the tasks; returns an outcome for each finished task and `null` for the others,
   * which keep running (Elixir's `Task.yield_many`). Never rejects for a task's failure.
   */
  yieldMany<T>(tasks: Task<T>[], timeoutMs = 5000): Promise<(TaskOutcome<T> | null)[]> {
    checkTasks('yieldMany', tasks);
    checkTimeout('yieldMany', timeoutMs);
    const collect = () => tasks.map((task) => task.outcome ?? null);
    if (tasks.every((task) => task.outcome !== undefined)) return Promise.resolve(collect());
    return new Promise((resolve) => {
      const timer = timeoutMs === Infinity ? undefined : setTimeout(() => resolve(collect()), timeoutMs);
      void Promise.all(tasks.map((task) => task.settled())).then(() => {
        clearTimeout(timer);
        resolve(collect());
      });
    });
  }

  /**
   * Runs `fn` for every input, at most `concurrency` at once, and resolves with the results in input order.
   * Fail-fast: the first failure (or timeout, with the default `onTimeout: 'throw'`) rejects with that error, aborts
   * the items in flight and starts no further item.
   */
  map<I, O>(inputs: FanOutInput<I>, fn: FanOutFn<I, O>, opts?: FanOutOptions): Promise<O[]> {
    const options = resolveFanOutOptions('map', inputs, fn, opts, this.#defaults);
    return this.#track(
      new FanOutRun<I, O>(`map-${++this.#seq}`, RunMode.Map, inputs, fn, options, this.#untrack),
    ).run() as Promise<O[]>;
  }

  /** Like `map`, but never rejects for an item: one `Outcome` per input, in input order. */
  settle<I, O>(inputs: FanOutInput<I>, fn: FanOutFn<I, O>, opts?: FanOutOptions): Promise<Outcome<I, O>[]> {
    const options = resolveFanOutOptions('settle', inputs, fn, opts, this.#defaults);
    return this.#track(
      new FanOutRun<I, O>(`settle-${++this.#seq}`, RunMode.Settle, inputs, fn, options, this.#untrack),
    ).run() as Promise<Outcome<I, O>[]>;
  }

  /**
   * The outcomes as an `AsyncIterable` (Elixir's `Task.async_stream`). Lazy: nothing runs until iteration starts,
   * and the next input is pulled only when fewer than `concurrency` items are running or waiting to be consumed.
   * Leaving `for await` early aborts the items in flight and closes the input. Each iteration is a new run.
   */
  stream<I, O>(inputs: FanOutInput<I>, fn: FanOutFn<I, O>, opts?: FanOutOptions): AsyncIterable<Outcome<I, O>> {
    const options = resolveFanOutOptions('stream', inputs, fn, opts, this.#defaults);
    return {
      [Symbol.asyncIterator]: () =>
        this.#track(new FanOutRun<I, O>(`stream-${++this.#seq}`, RunMode.Stream, inputs, fn, options, this.#untrack)),
    };
  }

  /**
   * `stream()` as an rxjs `Observable`, for controllers, `@nestjs/microservices` and rxjs pipelines. Each subscription
   * is a run; unsubscribing aborts the items in flight and closes the input. An item's failure is an outcome; the
   * Observable errors only for the call (parent signal, `onTimeout: 'throw'`, a throwing input).
   */
  stream$<I, O>(inputs: FanOutInput<I>, fn: FanOutFn<I, O>, opts?: FanOutOptions): Observable<Outcome<I, O>> {
    const options = resolveFanOutOptions('stream$', inputs, fn, opts, this.#defaults);
    return new Observable<Outcome<I, O>>((subscriber) => {
      const run = this.#track(
        new FanOutRun<I, O>(`stream-${++this.#seq}`, RunMode.Stream, inputs, fn, options, this.#untrack),
      );
      const pump = (): void => {
        run.next().then(
          (step) => {
            if (subscriber.closed) return;
            if (step.done) return subscriber.complete();
            subscriber.next(step.value);
            pump();
          },
          (error: unknown) => subscriber.error(error),
        );
      };
      pump();
      return () => void run.return();
    });
  }

  /** Drains (up to `shutdownTimeout`), then aborts the tasks and calls still running. */
  async onApplicationShutdown(): Promise<void> {
    if (this.#tasks.size === 0 && this.#runs.size === 0) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<void>((resolve) => {
      if (this.#shutdownTimeout !== Infinity) timer = setTimeout(resolve, this.#shutdownTimeout);
    });
    const drained = Promise.all([
      ...[...this.#tasks].map((task) => task.settled()),
      ...[...this.#runs].map((run) => run.ended()),
    ]);
    await Promise.race([drained, deadline]);
    clearTimeout(timer);
    for (const task of this.#tasks) task.abort(new TaskAbortedError(task.id, SHUTDOWN));
    for (const run of this.#runs) run.cancel(new TaskAbortedError(run.id, SHUTDOWN), SHUTDOWN);
  }

  #track<I, O>(run: FanOutRun<I, O>): FanOutRun<I, O> {
    this.#runs.add(run);
    return run;
  }

  readonly #untrack = (run: RunHandle): void => {
    this.#runs.delete(run);
  };
}
