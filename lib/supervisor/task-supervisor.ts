import { Logger } from '@nestjs/common';
import { type Observable, Subject } from 'rxjs';
import { DEFAULT_MAX_RESTARTS, DEFAULT_MAX_SECONDS, DEFAULT_SHUTDOWN_TIMEOUT } from '../concurrency.constants.js';
import { MaxChildrenError } from '../errors/max-children.error.js';
import { SupervisorShutdownError } from '../errors/supervisor-shutdown.error.js';
import { TaskAbortedError } from '../errors/task-aborted.error.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import { Child, ChildContext, ChildHandle, type ChildSpec } from './child.js';
import type { ChildInfo, ChildOptions, ChildRef, SupervisorEvent } from './interfaces/child.interface.js';
import type { SupervisorOptions } from './interfaces/supervisor-options.interface.js';
import type { TaskContext } from './interfaces/task.interface.js';
import {
  DONE,
  PERMANENT,
  QUEUED,
  RUNNING,
  START_CHUNK,
  STOPPING,
  TEMPORARY,
  TRANSIENT,
} from './supervisor.constants.js';
import { ABANDONED, CHILD_FAILED, CHILD_TIMED_OUT, INVALID_CHILD_OPTION, MAX_RESTARTS } from './supervisor.messages.js';
import { Task } from './task.js';
import { isThenable } from './utils/is-thenable.util.js';
import { checkTimeoutMs, isTimeoutMs, timeoutMsExpected } from './utils/timeout.util.js';
import { errorStack } from '../utils/describe.js';
import { supervisorChannel } from '../observability/channels.js';
import { ContextCapture } from '../observability/tracing/async-context.js';
import type { ConcurrencyTracer } from '../observability/tracing/concurrency-tracer.js';
import { ATTR } from '../observability/tracing/tracing.constants.js';

type Fn<T> = (ctx: TaskContext) => T | Promise<T>;
type Entry = Fn<unknown> | Child | ContextCapture | null | undefined;

const OK = 0;
const FAILED = 1;
const TIMED_OUT = 2;

const DEFAULTS: Required<SupervisorOptions> = {
  maxChildren: Infinity,
  maxRestarts: DEFAULT_MAX_RESTARTS,
  maxSeconds: DEFAULT_MAX_SECONDS,
  shutdownTimeout: DEFAULT_SHUTDOWN_TIMEOUT,
};

/** A failure log names the attempt's trace (`traceId=...`), so that a log line finds its trace. */
function withTraceId(message: string, child: Child): string {
  const span = child.ext?.span;
  return span === undefined ? message : `${message} traceId=${span.spanContext().traceId}`;
}

const PLAIN: ChildSpec = { name: undefined, restart: TEMPORARY, timeout: Infinity };

function specOf(opts: ChildOptions, forTask: boolean): ChildSpec {
  const { name, restart, timeout } = opts;
  if (name !== undefined && typeof name !== 'string') {
    throw new TypeError(INVALID_CHILD_OPTION('name', 'a string', name));
  }
  let policy = TEMPORARY;
  if (restart === 'transient') policy = TRANSIENT;
  else if (restart === 'permanent') policy = PERMANENT;
  else if (restart !== undefined && restart !== 'temporary') {
    throw new TypeError(INVALID_CHILD_OPTION('restart', `'temporary', 'transient' or 'permanent'`, restart));
  }
  if (forTask && policy !== TEMPORARY) {
    throw new TypeError(INVALID_CHILD_OPTION('restart', `'temporary' (a Task is never restarted)`, restart));
  }
  if (timeout !== undefined && !isTimeoutMs(timeout, true)) {
    throw new TypeError(INVALID_CHILD_OPTION('timeout', timeoutMsExpected(true), timeout));
  }
  return { name, restart: policy, timeout: timeout ?? Infinity };
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
  private seq = 0;
  /** Running (and stopping) children: an intrusive doubly linked list, O(1) to add and remove, no hashing. */
  private head: Child | undefined;
  private tail: Child | undefined;
  private running = 0;
  /** Accepted children waiting for their tick: pairs [fn or prebuilt Child, seq], consumed from `queueHead`. */
  private queue: Entry[] = [];
  private queueHead = 0;
  private queued = 0;
  /**
   * The async context of the last queued starter, also queued (as a pair [capture, 0]) before the children it
   * started; `flushScope` is the one the flush has reached. Children run in their starter's context, not in the
   * context of whoever scheduled the flush.
   */
  private scope: ContextCapture | undefined;
  private flushScope: ContextCapture | undefined;
  private flushScheduled = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  /** `observed` is the "someone subscribes" check; after `complete()` a late subscriber completes at once. */
  private readonly subject = new Subject<SupervisorEvent>();
  private idleWaiters: (() => void)[] | undefined;
  /**
   * @internal Totals since boot, read by the dashboard on its timer: plain increments, so watching costs nothing per
   * child.
   */
  readonly counts = { started: 0, completed: 0, failed: 0, timedOut: 0, terminated: 0, restarted: 0, refused: 0 };
  /** @internal Set at boot when the application traces: a span per attempt. Undefined: no span, no cost. */
  tracer: ConcurrencyTracer | undefined;

  /** @internal Supervisors are created by `ConcurrencyModule` (one per configured or injected name). */
  constructor(name: string, options: SupervisorOptions = {}) {
    this.name = name;
    this.prefix = `${name}-`;
    this.options = { ...DEFAULTS, ...options };
    this.events = this.subject.asObservable();
  }

  /**
   * Starts `fn` as a supervised child on a later tick and returns at once. Throws `SupervisorShutdownError` once
   * shutdown has begun and `MaxChildrenError` when `maxChildren` children are live.
   */
  startChild<T>(fn: Fn<T>, opts?: ChildOptions): ChildRef {
    this.admit(fn);
    const seq = ++this.seq;
    if (opts === undefined) {
      this.enqueue(fn, seq);
      return new ChildHandle(this.prefix, seq);
    }
    this.enqueue(new Child(this.prefix, seq, fn, specOf(opts, false), 1), seq);
    return new ChildHandle(this.prefix, seq);
  }

  /**
   * Starts `fn` as a child whose result someone collects (`Task.Supervisor.async_nolink`): its failure goes to the
   * returned `Task`, not to the log. Never restarted.
   */
  async<T>(fn: Fn<T>, opts?: ChildOptions): Task<T> {
    const child = this.taskChild(fn, opts);
    const task = this.taskOf<T>(child);
    this.enqueue(child, child.seq);
    return task;
  }

  /**
   * @internal Not public API (used by the scheduling pattern). Like `async()`, but invokes `fn` synchronously inside
   * the call. A tracked, never restarted child; its failure goes only to the returned `Task`.
   */
  startNow<T>(fn: Fn<T>, opts?: ChildOptions): Task<T> {
    const child = this.taskChild(fn, opts);
    const task = this.taskOf<T>(child);
    this.run(child, Date.now());
    return task;
  }

  /** The live children: running, terminating, or accepted and waiting for their tick. Settled children are gone. */
  children(): ChildInfo[] {
    return this.listChildren(Infinity);
  }

  /**
   * @internal The dashboard: at most `limit` live children (running first) and how many there are in all, without
   * walking or copying the rest.
   */
  childrenPreview(limit: number): { total: number; children: ChildInfo[] } {
    return { total: this.running + this.queued, children: this.listChildren(limit) };
  }

  private listChildren(limit: number): ChildInfo[] {
    const out: ChildInfo[] = [];
    for (let c = this.head; c !== undefined && out.length < limit; c = c.next) {
      out.push({
        id: c.id,
        name: c.spec.name,
        status: c.state === STOPPING ? 'terminating' : 'running',
        startedAt: new Date(c.startedAt),
        restarts: c.attempt - 1,
      });
    }
    const q = this.queue;
    for (let i = this.queueHead; i < q.length && out.length < limit; i += 2) {
      const e = q[i];
      if (!e || e instanceof ContextCapture) continue;
      const child = e instanceof Child ? e : undefined;
      out.push({
        id: this.prefix + (q[i + 1] as unknown as number),
        name: child?.spec.name,
        status: 'starting',
        startedAt: undefined,
        restarts: child ? child.attempt - 1 : 0,
      });
    }
    return out;
  }

  /**
   * Aborts the child's signal (`TaskAbortedError`, reason `'terminated'`) and resolves `true` once it has stopped; it
   * is not restarted. `false` for an unknown or finished child. The work has to honour `ctx.signal` to stop.
   */
  async terminateChild(id: string): Promise<boolean> {
    const seq = this.seqOf(id);
    if (seq === undefined) return false;
    for (let c = this.head; c !== undefined; c = c.next) {
      if (c.seq !== seq) continue;
      const stopped = new Promise<void>((resolve) => ((c.ext ??= {}).waiters ??= []).push(resolve));
      this.stop(c, 'terminated');
      await stopped;
      return true;
    }
    const q = this.queue;
    for (let i = this.queueHead; i < q.length; i += 2) {
      if (q[i] && (q[i + 1] as unknown as number) === seq) {
        this.cancelQueued(i, 'terminated');
        return true;
      }
    }
    return false;
  }

  /**
   * Refuses new children (`SupervisorShutdownError`), waits up to `timeoutMs` (default: the supervisor's
   * `shutdownTimeout`) for the live ones, then aborts the rest and waits for them as long again; children still
   * running after that are logged and abandoned. Idempotent: later calls return the same promise.
   */
  shutdown(timeoutMs: number = this.options.shutdownTimeout): Promise<void> {
    checkTimeoutMs('TaskSupervisor.shutdown()', timeoutMs);
    this.closed = true;
    return (this.closing ??= this.drain(timeoutMs));
  }

  /** @internal The testing kit (`ConcurrencyTester.idle()`): resolves once no child runs or waits to start. */
  whenIdle(): Promise<void> {
    return this.waitIdle(Infinity).then(() => undefined);
  }

  // ---- starting ---------------------------------------------------------------------------------------------------

  private admit(fn: unknown): void {
    if (this.closed) throw new SupervisorShutdownError(this.name);
    if (this.running + this.queued >= this.options.maxChildren) {
      this.counts.refused++; // starts refused at maxChildren: the dashboard's and health's saturation
      throw new MaxChildrenError(this.name, this.options.maxChildren);
    }
    if (typeof fn !== 'function') throw new TypeError(INVALID_CHILD_OPTION('fn', 'a function', fn));
  }

  private taskChild(fn: Fn<unknown>, opts: ChildOptions | undefined): Child {
    this.admit(fn);
    return new Child(this.prefix, ++this.seq, fn, opts === undefined ? PLAIN : specOf(opts, true), 1);
  }

  private taskOf<T>(child: Child): Task<T> {
    const controller = (child.controller = new AbortController());
    const ext = (child.ext = {} as NonNullable<Child['ext']>);
    const result = new Promise<T>((resolve, reject) => {
      ext.resolve = resolve as (value: unknown) => void;
      ext.reject = reject;
    });
    return new Task<T>(child.id, controller, result);
  }

  private enqueue(entry: Fn<unknown> | Child, seq: number): void {
    const scope = this.scope;
    if (scope === undefined || !scope.matches()) this.queue.push((this.scope = new ContextCapture()), 0 as never);
    this.queue.push(entry, seq as never);
    this.queued++;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  /**
   * Starts queued children, `START_CHUNK` per microtask: the children of one chunk settle (and are freed) before the
   * next chunk starts, so a burst of a million `startChild()` calls does not keep a million records alive. One clock
   * read per chunk.
   */
  private readonly flush = (): void => {
    const q = this.queue;
    const limit = this.queueHead + 2 * START_CHUNK;
    const end = q.length < limit ? q.length : limit;
    const now = Date.now();
    let i = this.queueHead;
    while (i < end) {
      const entry = q[i];
      if (entry instanceof ContextCapture) {
        q[i] = undefined;
        this.flushScope = entry;
        i += 2;
      } else i = this.flushScope!.runInAsyncScope(this.runQueued, this, i, end, now);
    }
    if (i < q.length) {
      this.queueHead = i;
      if (i >= 65_536 && 2 * i >= q.length) {
        this.queue = q.slice(i);
        this.queueHead = 0;
      }
      queueMicrotask(this.flush);
    } else {
      this.queue = [];
      this.queueHead = 0;
      this.scope = this.flushScope = undefined;
      this.flushScheduled = false;
    }
  };

  /** Runs the queued children from `i` up to `end` or the next context, inside `flushScope`; returns where it stopped. */
  private runQueued(i: number, end: number, now: number): number {
    const q = this.queue;
    const scope = this.flushScope!;
    for (; i < end; i += 2) {
      const entry = q[i];
      if (!entry) continue;
      if (entry instanceof ContextCapture) break;
      q[i] = undefined;
      this.queued--;
      const child =
        typeof entry === 'function' ? new Child(this.prefix, q[i + 1] as unknown as number, entry, PLAIN, 1) : entry;
      child.scope = scope;
      this.run(child, now);
      scope.restore();
    }
    return i;
  }

  private run(child: Child, now: number): void {
    child.state = RUNNING;
    child.startedAt = now;
    if (this.tail === undefined) this.head = child;
    else {
      this.tail.next = child;
      child.prev = this.tail;
    }
    this.tail = child;
    this.running++;
    this.counts.started++;
    if (this.subject.observed || supervisorChannel.hasSubscribers) this.emit('started', child);
    if (child.spec.timeout !== Infinity) {
      (child.ext ??= {}).timer = setTimeout(this.onTimeout, child.spec.timeout, child);
    }
    let result: unknown;
    try {
      result = this.tracer === undefined ? child.fn(new ChildContext(child)) : this.traced(child, this.tracer);
      // Inside the try: reading `then` runs user code (a Proxy or a getter, as some ORMs return) and may throw. That
      // is this child's failure, as `Promise.resolve` would make it, never the supervisor's.
      if (isThenable(result)) {
        // Two small closures sharing one context: measured smaller per live child than an async tracking function
        // (776 vs 960 bytes, bench/supervisor). A foreign thenable goes through Promise.resolve, so a `then` that
        // throws or calls back twice becomes one settlement of this child.
        (result instanceof Promise ? result : Promise.resolve(result)).then(
          (value: unknown) => this.settle(child, OK, value),
          (error: unknown) => this.settle(child, FAILED, error),
        );
        return;
      }
    } catch (error) {
      this.settle(child, FAILED, error);
      return;
    }
    this.settle(child, OK, result);
  }

  /** Runs one attempt inside its span `task <name or supervisor>`, a child of the span active where it was started. */
  private traced(child: Child, tracer: ConcurrencyTracer): unknown {
    const span = tracer.start(`task ${child.spec.name ?? this.name}`, {
      [ATTR.supervisor]: this.name,
      [ATTR.taskId]: child.id,
      [ATTR.taskAttempt]: child.attempt,
    });
    (child.ext ??= {}).span = span;
    return tracer.with(span, child.fn, undefined, new ChildContext(child));
  }

  private readonly onTimeout = (child: Child): void => {
    child.ext!.timer = undefined;
    // A stopping child (terminateChild/shutdown) already has its reason: it ends as terminated, never as a timeout.
    if (child.state !== RUNNING) return;
    const error = new TaskTimeoutError(child.spec.timeout, child.spec.name ?? child.id);
    (child.controller ??= new AbortController()).abort(error);
    this.settle(child, TIMED_OUT, error);
  };

  // ---- settling ---------------------------------------------------------------------------------------------------

  private settle(child: Child, kind: number, value: unknown): void {
    const state = child.state;
    if (state === DONE) return;
    child.state = DONE;
    if (state !== QUEUED) this.unlink(child);
    const ext = child.ext;
    if (ext?.timer !== undefined) clearTimeout(ext.timer);
    const stopped = kind !== TIMED_OUT && (state === STOPPING || (child.controller?.signal.aborted ?? false));
    if (ext?.span !== undefined) {
      const outcome = stopped ? 'terminated' : kind === OK ? 'completed' : kind === TIMED_OUT ? 'timeout' : 'failed';
      this.tracer?.end(ext.span, outcome, stopped ? child.controller?.signal.reason : value);
    }
    if (ext?.resolve !== undefined) {
      if (kind === OK) ext.resolve(value);
      else ext.reject!(value);
    }
    const watched = this.subject.observed || supervisorChannel.hasSubscribers;
    if (stopped) {
      this.counts.terminated++;
      if (watched) this.emit('terminated', child);
    } else if (kind === OK) {
      this.counts.completed++;
      if (watched) this.emit('completed', child);
      if (child.spec.restart === PERMANENT && !this.closed) this.restart(child, undefined);
    } else {
      if (kind === TIMED_OUT) this.counts.timedOut++;
      else this.counts.failed++;
      if (watched) this.emit(kind === TIMED_OUT ? 'timeout' : 'failed', child, value);
      if (ext?.resolve === undefined) this.logFailure(child, kind, value);
      if (child.spec.restart !== TEMPORARY && !this.closed) this.restart(child, value);
    }
    if (ext?.waiters !== undefined) for (const resolve of ext.waiters) resolve();
    if (this.idleWaiters !== undefined && this.running + this.queued === 0) {
      const waiters = this.idleWaiters;
      this.idleWaiters = undefined;
      for (const resolve of waiters) resolve();
    }
  }

  private unlink(child: Child): void {
    const { prev, next } = child;
    if (prev === undefined) this.head = next;
    else prev.next = next;
    if (next === undefined) this.tail = prev;
    else next.prev = prev;
    child.prev = child.next = undefined;
    this.running--;
  }

  /**
   * Restart intensity is counted per child: a child restarted more than `maxRestarts` times within `maxSeconds` is
   * given up (`max-restarts` event, error log); the supervisor and its other children carry on.
   */
  private restart(child: Child, error: unknown): void {
    const now = Date.now();
    const since = now - this.options.maxSeconds * 1000;
    const recent = (child.ext?.restartTimes ?? []).filter((t) => t > since);
    const lastError = error ?? child.ext?.lastError;
    if (recent.length >= this.options.maxRestarts) {
      if (this.subject.observed || supervisorChannel.hasSubscribers) this.emit('max-restarts', child, lastError);
      this.logger.error(
        MAX_RESTARTS(this.name, child.id, child.spec.name, this.options.maxRestarts, this.options.maxSeconds),
        errorStack(lastError),
      );
      return;
    }
    recent.push(now);
    const next = new Child(this.prefix, child.seq, child.fn, child.spec, child.attempt + 1);
    next.ext = { restartTimes: recent, lastError };
    this.counts.restarted++;
    if (this.subject.observed || supervisorChannel.hasSubscribers) this.emit('restarted', next);
    // The new attempt runs in the context the first one was started in, whoever settled the last one.
    if (child.scope === undefined) this.enqueue(next, next.seq);
    else child.scope.runInAsyncScope(this.enqueue, this, next, next.seq);
  }

  private logFailure(child: Child, kind: number, error: unknown): void {
    if (kind === TIMED_OUT) {
      this.logger.error(
        withTraceId(CHILD_TIMED_OUT(this.name, child.id, child.spec.name, child.attempt, child.spec.timeout), child),
      );
    } else {
      this.logger.error(
        withTraceId(CHILD_FAILED(this.name, child.id, child.spec.name, child.attempt, error), child),
        errorStack(error),
      );
    }
  }

  private emit(type: SupervisorEvent['type'], child: Child, error?: unknown): void {
    const event: SupervisorEvent = { type, supervisor: this.name, childId: child.id, attempt: child.attempt };
    if (child.spec.name !== undefined) event.name = child.spec.name;
    if (child.startedAt !== 0 && type !== 'started' && type !== 'restarted' && type !== 'max-restarts') {
      event.durationMs = Date.now() - child.startedAt;
    }
    if (error !== undefined) event.error = error;
    if (this.subject.observed) this.subject.next(event);
    if (supervisorChannel.hasSubscribers) supervisorChannel.publish(event);
  }

  // ---- stopping ---------------------------------------------------------------------------------------------------

  private seqOf(id: string): number | undefined {
    if (typeof id !== 'string' || !id.startsWith(this.prefix)) return undefined;
    // Only the exact id this supervisor handed out: `Number()` would also read '01', '1.0e0' or ' 1' as 1.
    const digits = id.slice(this.prefix.length);
    const seq = Number(digits);
    return Number.isSafeInteger(seq) && seq > 0 && String(seq) === digits ? seq : undefined;
  }

  /** Aborts a running child with `TaskAbortedError`; it settles as `terminated` and is not restarted. */
  private stop(child: Child, why: string): void {
    if (child.state !== RUNNING) return;
    child.state = STOPPING;
    const ext = child.ext;
    if (ext?.timer !== undefined) {
      clearTimeout(ext.timer);
      ext.timer = undefined;
    }
    (child.controller ??= new AbortController()).abort(new TaskAbortedError(child.id, why));
  }

  /** Drops an accepted child before it ran: it never runs, its task (if any) rejects with `TaskAbortedError`. */
  private cancelQueued(index: number, why: string): void {
    const entry = this.queue[index] as Fn<unknown> | Child; // never a context: its seq is 0
    const seq = this.queue[index + 1] as unknown as number;
    this.queue[index] = null;
    this.queued--;
    const child = entry instanceof Child ? entry : new Child(this.prefix, seq, entry, PLAIN, 1);
    const reason = new TaskAbortedError(child.id, why);
    (child.controller ??= new AbortController()).abort(reason);
    this.settle(child, FAILED, reason);
  }

  private waitIdle(timeoutMs: number): Promise<boolean> {
    if (this.running + this.queued === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = timeoutMs === Infinity ? undefined : setTimeout(resolve, timeoutMs, false);
      (this.idleWaiters ??= []).push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private async drain(timeoutMs: number): Promise<void> {
    if (!(await this.waitIdle(timeoutMs))) {
      for (let i = this.queueHead; i < this.queue.length; i += 2) {
        const entry = this.queue[i];
        if (entry && !(entry instanceof ContextCapture)) this.cancelQueued(i, 'shutdown');
      }
      for (let c = this.head; c !== undefined; c = c.next) this.stop(c, 'shutdown');
      if (!(await this.waitIdle(timeoutMs))) {
        const rest: Child[] = [];
        for (let c = this.head; c !== undefined; c = c.next) rest.push(c);
        this.logger.error(
          ABANDONED(
            this.name,
            rest.map((c) => c.spec.name ?? c.id),
            timeoutMs,
          ),
        );
        for (const child of rest) this.settle(child, FAILED, child.controller?.signal.reason);
      }
    }
    this.idleWaiters = undefined;
    this.subject.complete();
  }
}
