import { Logger } from '@nestjs/common';
import { Observable, type Subscriber } from 'rxjs';
import { MaxChildrenError } from '../errors/max-children.error.js';
import { SupervisorShutdownError } from '../errors/supervisor-shutdown.error.js';
import { TaskAbortedError } from '../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import { Child } from './child.js';
import type { ChildInfo, ChildOptions, ChildRef, SupervisorEvent } from './interfaces/child.interface.js';
import type { SupervisorOptions } from './interfaces/supervisor-options.interface.js';
import type { TaskContext } from './interfaces/task.interface.js';
import { DONE, PERMANENT, QUEUED, RUNNING, TEMPORARY, TRANSIENT } from './supervisor.constants.js';
import { ABANDONED, CHILD_FAILED, CHILD_TIMED_OUT, INVALID_CHILD_OPTION, MAX_RESTARTS } from './supervisor.messages.js';
import { Task } from './task.js';

type Fn<T> = (ctx: TaskContext) => T | Promise<T>;

const OK = 0;
const FAILED = 1;
const TIMED_OUT = 2;

const DEFAULTS: Required<SupervisorOptions> = {
  maxChildren: Infinity,
  maxRestarts: 3,
  maxSeconds: 5,
  shutdownTimeout: 5000,
};

function policyOf(restart: ChildOptions['restart']): number {
  if (restart === undefined || restart === 'temporary') return TEMPORARY;
  if (restart === 'transient') return TRANSIENT;
  if (restart === 'permanent') return PERMANENT;
  throw new TypeError(INVALID_CHILD_OPTION('restart', `'temporary', 'transient' or 'permanent'`, restart));
}

function timeoutOf(timeout: number | undefined): number {
  if (timeout === undefined) return Infinity;
  if (typeof timeout !== 'number' || !(timeout > 0)) {
    throw new TypeError(INVALID_CHILD_OPTION('timeout', 'a number of ms > 0 (or Infinity)', timeout));
  }
  return timeout;
}

/**
 * A named supervisor of fire-and-forget work (Elixir's `Task.Supervisor`). `startChild()` returns at once and runs the
 * function on a later tick; a failure is logged and emitted, never an unhandled rejection; restart policies and
 * intensity as in OTP; `shutdown()` refuses new work, drains, then aborts. Inject with `@InjectSupervisor(name)`.
 */
export class TaskSupervisor {
  readonly name: string;
  /** Lifecycle events. Event objects are only built while someone subscribes. Completes after `shutdown()`. */
  readonly events: Observable<SupervisorEvent>;

  private readonly options: Required<SupervisorOptions>;
  private readonly prefix: string;
  private readonly logger = new Logger('TaskSupervisor');
  private readonly live = new Map<number, Child>();
  private seq = 0;
  private queue: Child[] = [];
  private flushScheduled = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private finished = false;
  private subscribers: Subscriber<SupervisorEvent>[] = [];
  private idleWaiters: (() => void)[] | undefined;

  /** @internal Supervisors are created by `ConcurrencyModule` (one per configured or injected name). */
  constructor(name: string, options: SupervisorOptions = {}) {
    this.name = name;
    this.prefix = `${name}-`;
    this.options = { ...DEFAULTS, ...options };
    this.events = new Observable<SupervisorEvent>((subscriber) => {
      if (this.finished) {
        subscriber.complete();
        return;
      }
      this.subscribers = [...this.subscribers, subscriber];
      return () => {
        this.subscribers = this.subscribers.filter((s) => s !== subscriber);
      };
    });
  }

  /**
   * Starts `fn` as a supervised child on a later tick and returns at once. Throws `SupervisorShutdownError` once
   * shutdown has begun and `MaxChildrenError` when `maxChildren` children are live.
   */
  startChild<T>(fn: Fn<T>, opts?: ChildOptions): ChildRef {
    const child = this.admit(fn, opts, opts === undefined ? TEMPORARY : policyOf(opts.restart));
    this.enqueue(child);
    return child;
  }

  /**
   * Starts `fn` as a child whose result someone collects (`Task.Supervisor.async_nolink`): its failure goes to the
   * returned `Task`, not to the log. Always temporary.
   */
  async<T>(fn: Fn<T>, opts?: ChildOptions): Task<T> {
    if (opts?.restart !== undefined && opts.restart !== 'temporary') {
      throw new TypeError(INVALID_CHILD_OPTION('restart', `'temporary' for async() children`, opts.restart));
    }
    const child = this.admit(fn, opts, TEMPORARY);
    const task = this.taskOf<T>(child);
    this.enqueue(child);
    return task;
  }

  /**
   * @internal Not public API (used by the scheduling pattern). Like `async()`, but invokes `fn` synchronously inside
   * the call. A tracked, never restarted child; its failure goes only to the returned `Task`.
   */
  startNow<T>(fn: Fn<T>, opts?: ChildOptions): Task<T> {
    const child = this.admit(fn, opts, TEMPORARY);
    const task = this.taskOf<T>(child);
    this.run(child, Date.now());
    return task;
  }

  /** The live children (queued, running or terminating); settled children are gone at once. */
  children(): ChildInfo[] {
    const out: ChildInfo[] = [];
    for (const c of this.live.values()) {
      out.push({
        id: c.id,
        name: c.name,
        status: c.state === QUEUED ? 'starting' : c.stopping !== undefined ? 'terminating' : 'running',
        startedAt: c.startedAt === 0 ? undefined : new Date(c.startedAt),
        restarts: c.attempt - 1,
      });
    }
    return out;
  }

  /**
   * Aborts the child's signal (`TaskAbortedError`, reason `'terminated'`) and resolves `true` once it has stopped; it
   * is not restarted. `false` for an unknown or finished child. The work has to honour `ctx.signal` to stop.
   */
  async terminateChild(id: string): Promise<boolean> {
    const child = this.find(id);
    if (child === undefined) return false;
    if (child.state === RUNNING) {
      const stopped = new Promise<void>((resolve) => (child.waiters ??= []).push(resolve));
      this.stop(child, 'terminated');
      await stopped;
    } else {
      this.stop(child, 'terminated');
    }
    return true;
  }

  /**
   * Refuses new children (`SupervisorShutdownError`), waits up to `timeoutMs` (default: the supervisor's
   * `shutdownTimeout`) for the live ones, then aborts the rest and waits for them as long again; children still
   * running after that are logged and abandoned. Idempotent: later calls return the same promise.
   */
  shutdown(timeoutMs: number = this.options.shutdownTimeout): Promise<void> {
    this.closed = true;
    return (this.closing ??= this.drain(timeoutMs));
  }

  // ---- internals -------------------------------------------------------------------------------------------------

  private admit(fn: Fn<unknown>, opts: ChildOptions | undefined, restart: number): Child {
    if (this.closed) throw new SupervisorShutdownError(this.name);
    if (this.live.size >= this.options.maxChildren) throw new MaxChildrenError(this.name, this.options.maxChildren);
    if (typeof fn !== 'function') throw new TypeError(INVALID_CHILD_OPTION('fn', 'a function', fn));
    const seq = ++this.seq;
    const child =
      opts === undefined
        ? new Child(this.prefix, seq, fn, undefined, restart, Infinity, 1)
        : new Child(this.prefix, seq, fn, opts.name, restart, timeoutOf(opts.timeout), 1);
    this.live.set(seq, child);
    return child;
  }

  private taskOf<T>(child: Child): Task<T> {
    const controller = (child.controller = new AbortController());
    const result = new Promise<T>((resolve, reject) => {
      child.resolve = resolve as (value: unknown) => void;
      child.reject = reject;
    });
    return new Task<T>(child.id, controller, result);
  }

  private enqueue(child: Child): void {
    this.queue.push(child);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  /** Starts every queued child: one microtask and one clock read per batch, not per child. */
  private readonly flush = (): void => {
    const batch = this.queue;
    this.queue = [];
    this.flushScheduled = false;
    const now = Date.now();
    for (let i = 0; i < batch.length; i++) {
      if (batch[i].state === QUEUED) this.run(batch[i], now);
    }
  };

  private run(child: Child, now: number): void {
    child.state = RUNNING;
    child.startedAt = now;
    if (this.subscribers.length !== 0) this.emit('started', child);
    if (child.timeout !== Infinity) child.timer = setTimeout(this.onTimeout, child.timeout, child);
    let result: unknown;
    try {
      result = child.fn(child);
    } catch (error) {
      this.settle(child, FAILED, error);
      return;
    }
    if (
      result instanceof Promise ||
      (result !== null &&
        (typeof result === 'object' || typeof result === 'function') &&
        typeof (result as PromiseLike<unknown>).then === 'function')
    ) {
      void this.track(child, result as PromiseLike<unknown>);
    } else {
      this.settle(child, OK, result);
    }
  }

  /** Waits for an attempt without a closure per child; never rejects. */
  private async track(child: Child, result: PromiseLike<unknown>): Promise<void> {
    let kind = OK;
    let value: unknown;
    try {
      value = await result;
    } catch (error) {
      kind = FAILED;
      value = error;
    }
    this.settle(child, kind, value);
  }

  private readonly onTimeout = (child: Child): void => {
    child.timer = undefined;
    if (child.state === DONE) return;
    const error = new TaskTimeoutError(child.timeout, child.name ?? child.id);
    (child.controller ??= new AbortController()).abort(error);
    this.settle(child, TIMED_OUT, error);
  };

  private settle(child: Child, kind: number, value: unknown): void {
    if (child.state === DONE) return;
    child.state = DONE;
    if (child.timer !== undefined) clearTimeout(child.timer);
    const stopped = kind !== TIMED_OUT && (child.stopping !== undefined || (child.controller?.signal.aborted ?? false));
    if (child.resolve !== undefined) {
      if (kind === OK) child.resolve(value);
      else child.reject!(value);
    }
    let next: Child | undefined;
    if (stopped) {
      if (this.subscribers.length !== 0) this.emit('terminated', child);
    } else if (kind === OK) {
      if (this.subscribers.length !== 0) this.emit('completed', child);
      if (child.restart === PERMANENT && !this.closed) next = this.restartOf(child, undefined);
    } else {
      if (this.subscribers.length !== 0) this.emit(kind === TIMED_OUT ? 'timeout' : 'failed', child, value);
      if (child.resolve === undefined) this.logFailure(child, kind, value);
      if (child.restart !== TEMPORARY && !this.closed) next = this.restartOf(child, value);
    }
    if (next !== undefined) {
      this.live.set(child.seq, next);
      this.enqueue(next);
    } else {
      this.live.delete(child.seq);
    }
    if (child.waiters !== undefined) for (const resolve of child.waiters) resolve();
    if (this.idleWaiters !== undefined && this.live.size === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = undefined;
      for (const resolve of waiters) resolve();
    }
  }

  /** Restart intensity per child: more than `maxRestarts` restarts within `maxSeconds` and the child is given up. */
  private restartOf(child: Child, error: unknown): Child | undefined {
    const now = Date.now();
    const since = now - this.options.maxSeconds * 1000;
    const recent = (child.restartTimes ?? []).filter((t) => t > since);
    const lastError = error ?? child.lastError;
    if (recent.length >= this.options.maxRestarts) {
      if (this.subscribers.length !== 0) this.emit('max-restarts', child, lastError);
      this.logger.error(
        MAX_RESTARTS(this.name, child.id, child.name, this.options.maxRestarts, this.options.maxSeconds),
        lastError instanceof Error ? lastError.stack : undefined,
      );
      return undefined;
    }
    recent.push(now);
    const next = new Child(
      this.prefix,
      child.seq,
      child.fn,
      child.name,
      child.restart,
      child.timeout,
      child.attempt + 1,
    );
    next.restartTimes = recent;
    next.lastError = lastError;
    if (this.subscribers.length !== 0) this.emit('restarted', next);
    return next;
  }

  private logFailure(child: Child, kind: number, error: unknown): void {
    if (kind === TIMED_OUT) {
      this.logger.error(CHILD_TIMED_OUT(this.name, child.id, child.name, child.attempt, child.timeout));
    } else {
      this.logger.error(
        CHILD_FAILED(this.name, child.id, child.name, child.attempt, error),
        error instanceof Error ? error.stack : undefined,
      );
    }
  }

  private emit(type: SupervisorEvent['type'], child: Child, error?: unknown): void {
    const event: SupervisorEvent = { type, supervisor: this.name, childId: child.id, attempt: child.attempt };
    if (child.name !== undefined) event.name = child.name;
    if (type !== 'started' && type !== 'restarted' && type !== 'max-restarts' && child.startedAt !== 0) {
      event.durationMs = Date.now() - child.startedAt;
    }
    if (error !== undefined) event.error = error;
    for (const subscriber of this.subscribers) subscriber.next(event);
  }

  private find(id: string): Child | undefined {
    if (typeof id !== 'string' || !id.startsWith(this.prefix)) return undefined;
    const child = this.live.get(Number(id.slice(this.prefix.length)));
    return child !== undefined && child.id === id ? child : undefined;
  }

  /** Aborts a child; a queued one is settled at once and never runs. */
  private stop(child: Child, why: string): void {
    if (child.state === DONE) return;
    const reason = new TaskAbortedError(child.id, why);
    if (child.stopping === undefined) {
      child.stopping = why;
      (child.controller ??= new AbortController()).abort(reason);
    }
    if (child.state === QUEUED) this.settle(child, FAILED, reason);
  }

  private waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.live.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = timeoutMs === Infinity ? undefined : setTimeout(() => resolve(false), timeoutMs);
      (this.idleWaiters ??= []).push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private async drain(timeoutMs: number): Promise<void> {
    if (!(await this.waitIdle(timeoutMs))) {
      for (const child of [...this.live.values()]) this.stop(child, 'shutdown');
      if (!(await this.waitIdle(timeoutMs))) {
        const rest = [...this.live.values()];
        this.logger.error(
          ABANDONED(
            this.name,
            rest.map((c) => c.name ?? c.id),
            timeoutMs,
          ),
        );
        for (const child of rest) this.settle(child, FAILED, child.controller?.signal.reason);
      }
    }
    this.idleWaiters = undefined;
    this.finished = true;
    const subscribers = this.subscribers;
    this.subscribers = [];
    for (const subscriber of subscribers) subscriber.complete();
  }
}
