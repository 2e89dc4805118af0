import { Inject, Injectable, Logger, type OnApplicationShutdown, Optional } from '@nestjs/common';
import { availableParallelism } from 'node:os';
import { Observable } from 'rxjs';
import {
  CONCURRENCY_OPTIONS,
  DEFAULT_FAN_OUT_CONCURRENCY,
  DEFAULT_SHUTDOWN_TIMEOUT,
  DEFAULT_SUPERVISOR,
  DEFAULT_TASK_TIMEOUT,
} from '../concurrency.constants.js';
import { TaskAbortedError } from '../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import type { TaskContext, TaskOutcome } from '../supervisor/interfaces/task.interface.js';
import { Task } from '../supervisor/task.js';
import { SupervisorRegistry } from '../supervisor/supervisor.registry.js';
import { TaskSupervisor } from '../supervisor/task-supervisor.js';
import { isTimeoutMs, timeoutMsExpected } from '../supervisor/utils/timeout.util.js';
import { FanOutRun, type RunHandle, type RunHooks, RunMode, type RunProgress } from './fan-out.engine.js';
import { fanOutChannel } from '../observability/channels.js';
import type { FanOutMessage } from '../observability/interfaces/channel-messages.interface.js';
import { GROUP_FAILED, SHUTDOWN, THREADS_LEFT, invalidOptionMessage } from './fan-out.messages.js';
import { DEFAULT_IDLE_TIMEOUT, type ResolvedFanOutOptions, resolveFanOutOptions } from './fan-out-options.validator.js';
import type { FanOutModuleOptions } from './interfaces/fan-out-module-options.interface.js';
import type { FanOutFn, FanOutInput, FanOutOptions, Outcome } from './interfaces/fan-out-options.interface.js';
import { workerSpecOf } from './worker/worker-fn.js';
import { WorkerPools } from './worker/worker-pools.js';
import { errorMessage } from '../utils/describe.js';
import { withTimeout } from '../utils/with-timeout.js';

/** How long `app.close()` waits at least for worker threads to exit once their pools are destroyed. */
const MIN_THREAD_EXIT_WAIT = 5000;

type WorkerOption = 'threads' | 'maxThreads' | 'idleTimeout' | 'resourceLimits';

/** The part of the module options `FanOut` reads (`threads` defaults to one per core). */
type FanOutSettings = Pick<ResolvedConcurrencyOptions, 'shutdownTimeout'> & {
  fanOut: Omit<ResolvedConcurrencyOptions['fanOut'], WorkerOption> & Partial<Pick<FanOutModuleOptions, WorkerOption>>;
};

const DEFAULTS: FanOutSettings = {
  fanOut: { concurrency: DEFAULT_FAN_OUT_CONCURRENCY, timeout: DEFAULT_TASK_TIMEOUT },
  shutdownTimeout: DEFAULT_SHUTDOWN_TIMEOUT,
};

/** Only called while `fanOutChannel` has subscribers. */
function publishCallEnded(run: RunHandle): void {
  const p = run.progress();
  const message: FanOutMessage = {
    type: 'call-ended',
    call: run.id,
    items: p.settled,
    failures: p.failed,
    timeouts: p.timedOut,
    durationMs: p.startedAt === 0 ? 0 : Date.now() - p.startedAt,
  };
  fanOutChannel.publish(message);
}

function checkTimeout(method: string, timeoutMs: unknown): void {
  if (isTimeoutMs(timeoutMs)) return;
  const message = invalidOptionMessage(method, 'timeoutMs', timeoutMsExpected(), timeoutMs);
  throw typeof timeoutMs === 'number' && !Number.isNaN(timeoutMs) ? new RangeError(message) : new TypeError(message);
}

function checkTasks(method: string, tasks: unknown): asserts tasks is Task<unknown>[] {
  if (!Array.isArray(tasks) || !tasks.every((task) => task instanceof Task)) {
    throw new TypeError(
      invalidOptionMessage(method, 'tasks', 'an array of Task (from FanOut.async or TaskSupervisor.async)', tasks),
    );
  }
}

/** @internal What the testing kit (`ConcurrencyTester`) hears of the fan-out calls. */
export interface FanOutWatcher {
  /** An item failed or timed out; `id` is its `ItemContext.id`. */
  failed(id: string, reason: unknown): void;
  /** No `map`/`settle`/`stream` call runs any more. */
  idle(): void;
}

/**
 * Fan-out / fan-in (Elixir's `Task.async` + `await_many` / `yield_many`, and `Task.async_stream`): run many pieces of
 * work at once, bounded, and collect every result. Defaults come from `forRoot({ fanOut: { concurrency, timeout } })`.
 *
 * `async()` tasks are children of the `'default'` `TaskSupervisor` (listed by its `children()`, bounded by its
 * `maxChildren`, drained with it). At application shutdown `map`/`settle`/`stream` calls, including calls made during
 * the drain, get up to `shutdownTimeout` to finish; the ones still running are then cancelled (their items' signals
 * carry a `TaskAbortedError`, the call rejects with it), and later calls are cancelled at once.
 */
@Injectable()
export class FanOut implements OnApplicationShutdown {
  readonly #defaults: Required<FanOutModuleOptions>;
  /** The worker-thread pools of `workerFn` functions, one per module, created on first use. */
  readonly #workers: WorkerPools;
  readonly #shutdownTimeout: number;
  readonly #supervisor: TaskSupervisor;
  /** Every supervisor of the app; without Nest (`new FanOut()`) undefined, and tasks run under a private supervisor. */
  readonly #registry: SupervisorRegistry | undefined;
  /** `map`/`settle`/`stream` runs that have begun and not ended. */
  readonly #runs = new Set<RunHandle>();
  #onIdle: (() => void) | undefined;
  #watcher: FanOutWatcher | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  #seq = 0;

  readonly #hooks: RunHooks = {
    begin: (run) => {
      this.#runs.add(run);
      if (fanOutChannel.hasSubscribers) {
        fanOutChannel.publish({ type: 'call-started', call: run.id } satisfies FanOutMessage);
      }
      if (this.#closed) run.cancel(new TaskAbortedError(run.id, SHUTDOWN), SHUTDOWN);
    },
    end: (run) => {
      // A stream closed before its first next() never began: nothing to end, nothing to publish.
      if (!this.#runs.delete(run)) return;
      if (fanOutChannel.hasSubscribers) publishCallEnded(run);
      if (this.#runs.size === 0) {
        this.#onIdle?.();
        this.#watcher?.idle();
      }
    },
    failed: (run, index, reason, timedOut) => {
      if (fanOutChannel.hasSubscribers) {
        const type = timedOut === true ? 'item-timeout' : 'item-failed';
        fanOutChannel.publish({ type, call: run.id, index, error: reason } satisfies FanOutMessage);
      }
      this.#watcher?.failed(`${run.id}:${index}`, reason);
    },
  };

  /** @internal `FanOut` is created by `ConcurrencyModule`: inject it. */
  constructor(
    @Optional() @Inject(CONCURRENCY_OPTIONS) options?: FanOutSettings,
    @Optional() registry?: SupervisorRegistry,
  ) {
    const settings = options ?? DEFAULTS;
    const threads = settings.fanOut.threads ?? availableParallelism();
    this.#defaults = {
      ...settings.fanOut,
      threads,
      maxThreads: settings.fanOut.maxThreads ?? Math.max(threads, availableParallelism()),
      idleTimeout: settings.fanOut.idleTimeout ?? DEFAULT_IDLE_TIMEOUT,
      resourceLimits: settings.fanOut.resourceLimits ?? {},
    };
    this.#workers = new WorkerPools(this.#defaults);
    this.#shutdownTimeout = settings.shutdownTimeout;
    this.#registry = registry;
    this.#supervisor =
      registry?.get(DEFAULT_SUPERVISOR) ?? new TaskSupervisor('fan-out', { shutdownTimeout: settings.shutdownTimeout });
    // Tracing is decided at boot, after construction: the runs read the supervisor's tracer when they start.
    Object.defineProperty(this.#hooks, 'tracer', { get: () => this.#supervisor.tracer });
  }

  /**
   * Starts `fn` on a later microtask as a child of the `'default'` supervisor and returns its `Task` (Elixir's
   * `Task.async`). Collect it with `awaitMany`, `yieldMany` or `task.await()`; a failure is kept for the awaiter,
   * never an unhandled rejection. Throws `SupervisorShutdownError` once shutdown has begun.
   */
  async<T>(fn: (ctx: TaskContext) => T | Promise<T>): Task<T> {
    if (typeof fn !== 'function') throw new TypeError(invalidOptionMessage('async', 'fn', 'a function', fn));
    return this.#supervisor.async(fn);
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
      const detach: (() => void)[] = [];
      const end = () => {
        over = true;
        clearTimeout(timer);
        for (const leave of detach) leave();
      };
      const stop = (error: unknown, abortReason: (task: Task<T>) => unknown) => {
        if (over) return;
        end();
        for (const task of tasks) if (task.outcome === undefined) task.abort(abortReason(task));
        reject(error);
      };
      if (pending === 0) return resolve(results);
      // A task that has settled already calls back at once (and may end the call): attach no waiter after that.
      for (let i = 0; i < tasks.length && !over; i++) {
        detach.push(
          tasks[i].watch((outcome) => {
            if (over) return;
            if (outcome.status === 'rejected')
              return stop(outcome.reason, (t) => new TaskAbortedError(t.id, GROUP_FAILED));
            results[i] = outcome.value;
            if (--pending === 0) {
              end();
              resolve(results);
            }
          }),
        );
      }
      if (timeoutMs !== Infinity && !over) {
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
    let pending = tasks.filter((task) => task.outcome === undefined).length;
    if (pending === 0) return Promise.resolve(collect());
    return new Promise((resolve) => {
      // One detachable waiter per running task (not a Promise.all over settled()): a poll that times out leaves the
      // tasks as it found them, so polling long tasks does not grow memory.
      const detach: (() => void)[] = [];
      const finish = () => {
        clearTimeout(timer);
        for (const leave of detach) leave();
        resolve(collect());
      };
      const timer = timeoutMs === Infinity ? undefined : setTimeout(finish, timeoutMs);
      for (const task of tasks) {
        if (task.outcome === undefined) detach.push(task.watch(() => --pending === 0 && finish()));
      }
    });
  }

  /**
   * Runs `fn` for every input, at most `concurrency` at once, and resolves with the results in input order.
   * Fail-fast: the first failure (or timeout, with the default `onTimeout: 'throw'`) rejects with that error, aborts
   * the items in flight and starts no further item.
   */
  map<I, O>(inputs: FanOutInput<I>, fn: FanOutFn<I, O>, opts?: FanOutOptions): Promise<O[]> {
    const options = resolveFanOutOptions('map', inputs, fn, opts, this.#defaults);
    const run = this.#fn(fn, opts, options);
    return new FanOutRun<I, O>(`map-${++this.#seq}`, RunMode.Map, inputs, run, options, this.#hooks).run() as Promise<
      O[]
    >;
  }

  /** Like `map`, but never rejects for an item: one `Outcome` per input, in input order. */
  settle<I, O>(inputs: FanOutInput<I>, fn: FanOutFn<I, O>, opts?: FanOutOptions): Promise<Outcome<I, O>[]> {
    const options = resolveFanOutOptions('settle', inputs, fn, opts, this.#defaults);
    return new FanOutRun<I, O>(
      `settle-${++this.#seq}`,
      RunMode.Settle,
      inputs,
      this.#fn(fn, opts, options),
      options,
      this.#hooks,
    ).run() as Promise<Outcome<I, O>[]>;
  }

  /**
   * The outcomes as an `AsyncIterable` (Elixir's `Task.async_stream`). Lazy: nothing runs until iteration starts,
   * and the next input is pulled only when fewer than `concurrency` items are running or waiting to be consumed.
   * Leaving `for await` early aborts the items in flight and closes the input. Each iteration is a new run.
   */
  stream<I, O>(inputs: FanOutInput<I>, fn: FanOutFn<I, O>, opts?: FanOutOptions): AsyncIterable<Outcome<I, O>> {
    const options = resolveFanOutOptions('stream', inputs, fn, opts, this.#defaults);
    const run = this.#fn(fn, opts, options);
    return {
      [Symbol.asyncIterator]: () =>
        new FanOutRun<I, O>(`stream-${++this.#seq}`, RunMode.Stream, inputs, run, options, this.#hooks),
    };
  }

  /**
   * `stream()` as an rxjs `Observable`, for controllers, `@nestjs/microservices` and rxjs pipelines. Each subscription
   * is a run; unsubscribing aborts the items in flight and closes the input. An item's failure is an outcome; the
   * Observable errors only for the call (parent signal, `onTimeout: 'throw'`, a throwing input).
   */
  stream$<I, O>(inputs: FanOutInput<I>, fn: FanOutFn<I, O>, opts?: FanOutOptions): Observable<Outcome<I, O>> {
    const options = resolveFanOutOptions('stream$', inputs, fn, opts, this.#defaults);
    const itemFn = this.#fn(fn, opts, options);
    return new Observable<Outcome<I, O>>((subscriber) => {
      const run = new FanOutRun<I, O>(`stream-${++this.#seq}`, RunMode.Stream, inputs, itemFn, options, this.#hooks);
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

  /** @internal The testing kit: `watcher` hears of every failed item and of every moment no call runs. */
  watch(watcher: FanOutWatcher | undefined): void {
    this.#watcher = watcher;
  }

  /** @internal The dashboard: the calls that run now, with their counts. */
  runningCallsProgress(): Array<RunProgress & { id: string }> {
    return Array.from(this.#runs, (run) => ({ id: run.id, ...run.progress() }));
  }

  /** @internal The testing kit: the ids of the `map`/`settle`/`stream` calls that run now. */
  runningCalls(): string[] {
    return Array.from(this.#runs, (run) => run.id);
  }

  /**
   * Waits up to `shutdownTimeout` until no `map`/`settle`/`stream` call runs and the supervisors have drained (their
   * children and jobs may still start calls while they finish), then cancels the calls left and every later one.
   * `async()` tasks are drained by their supervisor.
   */
  onApplicationShutdown(): Promise<void> {
    // Once: the cache awaits this drain before it closes its stores (work drained here may use the cache).
    return (this.#closing ??= this.#shutdown());
  }

  async #shutdown(): Promise<void> {
    // Idempotent: the same promises the supervisor registry's own hook awaits.
    const supervised = this.#registry
      ? Promise.all(this.#registry.all().map((supervisor) => supervisor.shutdown()))
      : this.#supervisor.shutdown(this.#shutdownTimeout);
    if (this.#shutdownTimeout !== 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((resolve) => {
        if (this.#shutdownTimeout !== Infinity) timer = setTimeout(resolve, this.#shutdownTimeout);
      });
      const quiet = (async () => {
        await supervised;
        while (this.#runs.size !== 0) await new Promise<void>((resolve) => (this.#onIdle = resolve));
      })();
      await Promise.race([quiet, deadline]);
      clearTimeout(timer);
      this.#onIdle = undefined;
    }
    this.#closed = true;
    // Before cancelling: an item aborted now ends its thread, and a sealed pool starts no replacement.
    this.#workers.seal();
    for (const run of this.#runs) run.cancel(new TaskAbortedError(run.id, SHUTDOWN), SHUTDOWN);
    await supervised;
    // Every call has ended (or was cancelled, which ended its items' threads): no thread may outlive the app. A
    // thread stuck where terminate() cannot reach (native code) must not hold app.close() for good either.
    const closing = this.#workers.close();
    if (this.#shutdownTimeout === Infinity) return closing;
    const bound = Math.max(this.#shutdownTimeout, MIN_THREAD_EXIT_WAIT);
    await withTimeout(closing, bound, () => new Error(THREADS_LEFT(bound))).catch((error: unknown) =>
      new Logger('FanOut').warn(errorMessage(error)),
    );
  }

  /**
   * The function the engine runs: `fn` itself, or for a `workerFn` a task on its module's pool. A `workerFn` call that
   * does not set `concurrency` runs `fanOut.threads` items at once (more would only wait in the pool's queue, where
   * their timeouts would already run).
   */
  #fn<I, O>(fn: FanOutFn<I, O>, opts: FanOutOptions | undefined, options: ResolvedFanOutOptions): FanOutFn<I, O> {
    const spec = workerSpecOf(fn);
    if (spec === undefined) return fn;
    if (opts?.concurrency === undefined) options.concurrency = this.#workers.threadsOf(spec);
    return this.#workers.fn(spec, options.transfer) as FanOutFn<I, O>;
  }
}
