import { Logger, type LoggerService } from '@nestjs/common';
import type { SchedulerRegistry } from '@nestjs/schedule';
import { SupervisorShutdownError } from '../../errors/supervisor-shutdown.error.js';
import { TaskTimeoutError } from '../../errors/task-timeout.error.js';
import type { TaskContext, TaskOutcome } from '../../supervisor/interfaces/task.interface.js';
import type { Task } from '../../supervisor/task.js';
import { JobRunningError } from '../errors/job-running.error.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import type { JobContext } from '../interfaces/job-context.interface.js';
import type { JobDefinition } from '../interfaces/job-definition.interface.js';
import type { JobInfo } from '../interfaces/job-info.interface.js';
import type { JobLease } from '../interfaces/job-lock.interface.js';
import { withTimeout } from '../../utils/with-timeout.js';
import { LOCK_EXTEND_RATIO } from '../scheduling.constants.js';
import {
  JOB_FAILED,
  JOB_SKIPPED_CLUSTER_OVERLAP,
  JOB_SKIPPED_OVERLAP,
  LEASE_LOST,
  LOCK_FAILED,
  RUN_LEASE_LOST,
} from '../scheduling.messages.js';
import { errorMessage, errorStack } from '../../utils/describe.js';
import { jobChannel } from '../../observability/channels.js';
import { ContextCapture } from '../../observability/tracing/async-context.js';
import { executionAsyncResource } from 'node:async_hooks';
import type { ConcurrencyTracer } from '../../observability/tracing/concurrency-tracer.js';
import { ATTR } from '../../observability/tracing/tracing.constants.js';
import type { JobMessage } from '../../observability/interfaces/channel-messages.interface.js';

/** The part of `TaskSupervisor` a job needs: start the run now, synchronously, tracked for shutdown. */
export interface JobsSupervisor {
  readonly name: string;
  startNow<T>(fn: (ctx: TaskContext) => T | Promise<T>, opts?: { name?: string }): Task<T>;
  /** Set when the application traces: a span per run. */
  readonly tracer?: ConcurrencyTracer;
}

/** What jobs share: the supervisor, the registries, the logger and whether the application is closing. Internal. */
export interface JobHost {
  readonly supervisor: JobsSupervisor;
  readonly schedulerRegistry: SchedulerRegistry;
  /** Carries its own context (`Jobs`): pass no context argument, or it prints as an extra message line. */
  readonly logger: LoggerService;
  readonly closing: boolean;
  /** The testing kit (`ConcurrencyTester.failures()`) hears of every failed run here. */
  readonly onJobFailure?: (job: string, error: unknown) => void;
  /** Every run's end (or timeout), for the run history. */
  readonly runEnded?: (job: string, scheduledAt: Date, startedAt: number, outcome: TaskOutcome<unknown>) => void;
}

type Lock = NonNullable<JobDefinition['lock']>;

const nativeThen = Promise.prototype.then;

/** Thrown (and caught) on the locked tick path when the job was paused while its tick waited for the lock. */
const PAUSED = Symbol('paused');

/**
 * One scheduled job: the tick path (overlap guard -> lock -> supervisor -> method) and its statistics. Subclasses own
 * the timer. Internal.
 */
export abstract class ScheduledJob {
  running = 0;
  runs = 0;
  failures = 0;
  skipped = 0;
  lockFailures = 0;
  lastRunAt: Date | null = null;
  lastDurationMs: number | null = null;
  lastError: unknown = null;
  lastErrorAt: Date | null = null;
  protected paused = false;
  /** Ticks waiting for the lock: they count as running for the overlap guard. */
  #acquiring = 0;
  readonly #runOptions: { name: string };
  /** The context the application booted in: every scheduled run sees it, whoever (re)armed the timer. */
  readonly #boot = new ContextCapture();

  constructor(
    readonly def: JobDefinition,
    protected readonly host: JobHost,
  ) {
    this.#runOptions = { name: def.name };
  }

  get name(): string {
    return this.def.name;
  }

  abstract readonly kind: JobInfo['kind'];
  abstract schedule(): string | number;
  /** Starts the timer and registers it in `SchedulerRegistry` (onApplicationBootstrap). */
  abstract mount(): void;
  /** Stops the timer for good (beforeApplicationShutdown). */
  abstract unmount(): void;
  abstract pause(): void;
  abstract resume(): void;
  abstract nextRunAt(): Date | null;
  isPaused(): boolean {
    return this.paused;
  }

  /** The time that names a tick in the lock key. */
  protected lockTime(scheduledAt: Date): Date {
    return scheduledAt;
  }

  info(): JobInfo {
    return {
      name: this.def.name,
      kind: this.kind,
      schedule: this.schedule(),
      running: this.running,
      runs: this.runs,
      failures: this.failures,
      skipped: this.skipped,
      lockFailures: this.lockFailures,
      lastRunAt: this.lastRunAt,
      lastDurationMs: this.lastDurationMs,
      lastError: this.lastError,
      lastErrorAt: this.lastErrorAt,
      nextRunAt: this.nextRunAt(),
      paused: this.isPaused(),
    };
  }

  /**
   * A timer tick. Without a lock the method runs synchronously, inside this call. `done` (fixed-delay) is called once
   * the tick is over: its run ended, or it was skipped.
   */
  protected tick(
    scheduledAt: Date,
    done?: () => void,
    verdict?: (outcome: TaskOutcome<unknown>) => void,
    lock: Lock | undefined = this.def.lock,
  ): void {
    if (executionAsyncResource() !== this.#boot) {
      this.#boot.runInAsyncScope(this.tick, this, scheduledAt, done, verdict, lock);
      return;
    }
    if (this.host.closing) return;
    if (this.def.overlap === 'skip' && (this.running > 0 || this.#acquiring > 0)) {
      this.skipped++;
      if (jobChannel.hasSubscribers) this.#publish('skipped', 'overlap');
      // Skips can be frequent: build the message only when debug logs are on.
      if (Logger.isLevelEnabled('debug')) this.host.logger.debug?.(JOB_SKIPPED_OVERLAP(this.def.name, scheduledAt));
      done?.();
      return;
    }
    if (lock) {
      void this.#lockedTick(scheduledAt, lock, done, verdict);
      return;
    }
    let task: Task<unknown>;
    try {
      task = this.#start(scheduledAt, undefined, verdict);
    } catch (error) {
      this.#refused(error);
      done?.();
      return;
    }
    if (done) void task.settled().then(done);
  }

  /**
   * Runs the job now, on this instance, respecting overlap. The tick's lease is bypassed; with a lock and overlap
   * 'skip' the job's running lease is not: taken first (rejects with `JobRunningError` if another instance runs the job,
   * with the lock's error if the store fails) and held until the method really ends. Settles with the run: rejects
   * with its error, or with `TaskTimeoutError` at its `timeout` (even if the method goes on).
   */
  trigger(): Promise<void> {
    if (this.host.closing) return Promise.reject(new SupervisorShutdownError(this.host.supervisor.name));
    if (this.def.overlap === 'skip' && (this.running > 0 || this.#acquiring > 0)) {
      this.skipped++;
      if (jobChannel.hasSubscribers) this.#publish('skipped', 'overlap');
      return Promise.reject(new JobRunningError(this.def.name));
    }
    if (this.def.lock && this.def.overlap === 'skip') return this.#lockedTrigger(this.def.lock);
    return new Promise((resolve, reject) => {
      this.#start(
        new Date(),
        undefined,
        (outcome) => (outcome.status === 'fulfilled' ? resolve() : reject(outcome.reason)),
        true,
      );
    });
  }

  /**
   * @internal The testing kit (`ConcurrencyTester`): one tick named `scheduledAt` through the tick path (overlap guard,
   * the lock when `locked` and the job has one, supervisor, method). Resolves once the tick is over (the run has
   * really ended, or the tick was skipped) with the run's outcome (its value is not kept), or undefined when skipped.
   */
  runTick(scheduledAt: Date, locked: boolean): Promise<TaskOutcome<unknown> | undefined> {
    if (this.host.closing) return Promise.reject(new SupervisorShutdownError(this.host.supervisor.name));
    return new Promise((resolve) => {
      let outcome: TaskOutcome<unknown> | undefined;
      const verdict = (o: TaskOutcome<unknown>) => {
        outcome = o.status === 'fulfilled' ? { status: 'fulfilled', value: undefined } : o;
      };
      this.tick(scheduledAt, () => resolve(outcome), verdict, locked ? this.def.lock : undefined);
    });
  }

  /**
   * Hands the run to the supervisor, which calls the method synchronously. Throws if the supervisor refuses. The
   * returned task settles when the method's own promise does: a run past its `timeout` counts as failed at once and
   * its signal is aborted, but it stays running (overlap guard, shutdown drain) until the method really ends.
   * `verdict` gets the run's outcome at its end or at its timeout, whichever comes first.
   */
  #start(
    scheduledAt: Date,
    lease: JobLease | undefined,
    verdict?: (outcome: TaskOutcome<unknown>) => void,
    triggered = false,
  ): Task<unknown> {
    const tracer = this.host.supervisor.tracer;
    if (tracer === undefined) return this.#run(scheduledAt, lease, verdict);
    // A tick is a root span (a new trace, whatever was active at boot); a trigger() a child of its caller's span.
    const attributes: Record<string, string | number> = {
      [ATTR.jobName]: this.def.name,
      [ATTR.jobKind]: this.kind,
      [ATTR.jobScheduledAt]: scheduledAt.toISOString(),
    };
    if (lease) attributes[ATTR.jobFencingToken] = lease.token;
    const span = tracer.start(`job ${this.def.name}`, attributes, undefined, !triggered);
    let ended = false;
    const end = (outcome: TaskOutcome<unknown>): void => {
      if (ended) return;
      ended = true;
      const timedOut = outcome.status === 'rejected' && outcome.reason instanceof TaskTimeoutError;
      tracer.end(
        span,
        outcome.status === 'fulfilled' ? 'completed' : timedOut ? 'timeout' : 'failed',
        outcome.status === 'rejected' ? outcome.reason : undefined,
      );
    };
    try {
      return tracer.with(span, () =>
        this.#run(scheduledAt, lease, (outcome) => {
          end(outcome);
          verdict?.(outcome);
        }),
      );
    } catch (error) {
      end({ status: 'rejected', reason: error });
      throw error;
    }
  }

  #run(
    scheduledAt: Date,
    lease: JobLease | undefined,
    verdict?: (outcome: TaskOutcome<unknown>) => void,
  ): Task<unknown> {
    const { name, instance, methodName, timeout } = this.def;
    const startedAt = Date.now();
    // A method that returns without a promise has ended when startNow returns: count it as ended at once, so the
    // next tick of a fake-timer test (no microtask in between) does not see it running.
    let async = false;
    this.running++;
    this.runs++;
    if (jobChannel.hasSubscribers) this.#publish('started');
    let task: Task<unknown>;
    try {
      task = this.host.supervisor.startNow((ctx) => {
        const jobContext: JobContext = { signal: ctx.signal, name, scheduledAt, attempt: ctx.attempt };
        if (lease) jobContext.fencingToken = lease.token;
        const result = (instance as Record<string | symbol, (ctx: JobContext) => unknown>)[methodName](jobContext);
        // Whatever the method returns, the supervisor gets a plain value or a native promise, never the user's
        // object: its `then` is read once, here, where a throwing getter fails this run (as `await` would), and a
        // foreign thenable is adopted by a promise whose executor catches a throwing `then`.
        if (result === null || (typeof result !== 'object' && typeof result !== 'function')) return undefined;
        const then = (result as { then?: unknown }).then;
        if (typeof then !== 'function') return undefined;
        const promise =
          then === nativeThen && result instanceof Promise
            ? result
            : new Promise((resolve, reject) => {
                (then as PromiseLike<unknown>['then']).call(result, resolve, reject);
              });
        async = true;
        return promise;
      }, this.#runOptions);
    } catch (error) {
      this.running--;
      this.runs--;
      throw error;
    }
    this.lastRunAt = new Date(startedAt);
    if (!async) this.#ended(startedAt);
    // The timeout lives here, not in the supervisor: a supervisor settles a timed-out child at once, while the
    // method may ignore its signal and go on; the job must keep counting it as running.
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (async && timeout !== undefined) {
      timer = setTimeout(() => {
        timer = undefined;
        const error = new TaskTimeoutError(timeout, name);
        task.abort(error);
        this.#failed(error, startedAt);
        this.host.runEnded?.(name, scheduledAt, startedAt, { status: 'rejected', reason: error });
        verdict?.({ status: 'rejected', reason: error });
      }, timeout);
    }
    void task.settled().then((outcome) => {
      if (async) this.#ended(startedAt);
      const timedOut = async && timeout !== undefined && timer === undefined; // failed at its timeout already
      if (timer !== undefined) clearTimeout(timer);
      if (!timedOut) {
        if (outcome.status === 'rejected') this.#failed(outcome.reason, startedAt);
        else if (jobChannel.hasSubscribers) this.#publish('completed', undefined, Date.now() - startedAt);
        this.host.runEnded?.(name, scheduledAt, startedAt, outcome);
        verdict?.(outcome);
      }
      this.runSettled();
    });
    return task;
  }

  /** Only called while `jobChannel` has subscribers. */
  #publish(type: JobMessage['type'], reason?: JobMessage['reason'], durationMs?: number, error?: unknown): void {
    const message: JobMessage = { type, job: this.def.name, kind: this.kind };
    if (reason !== undefined) message.reason = reason;
    if (durationMs !== undefined) message.durationMs = durationMs;
    if (error !== undefined) message.error = error;
    jobChannel.publish(message);
  }

  /** A run has really ended (its method settled), whoever started it: a tick or `trigger()`. */
  protected runSettled(): void {}

  #ended(startedAt: number): void {
    this.running--;
    this.lastDurationMs = Date.now() - startedAt;
  }

  #failed(error: unknown, startedAt: number): void {
    this.failures++;
    if (jobChannel.hasSubscribers) this.#publish('failed', undefined, Date.now() - startedAt, error);
    this.lastError = error;
    this.lastErrorAt = new Date();
    this.host.onJobFailure?.(this.def.name, error);
    // Called inside the run's span when the app traces: the log line names its trace.
    const traceId = this.host.supervisor.tracer?.traceId();
    const suffix = traceId === undefined ? '' : ` traceId=${traceId}`;
    this.host.logger.error(`${JOB_FAILED(this.def.name)}: ${errorMessage(error)}${suffix}`, errorStack(error));
  }

  /** The supervisor refused the run (shutting down, or maxChildren): the tick is skipped. */
  #refused(error: unknown): void {
    this.skipped++;
    if (jobChannel.hasSubscribers) this.#publish('skipped', 'refused');
    if (error instanceof SupervisorShutdownError) return;
    this.host.logger.warn(`Job "${this.def.name}" skipped a tick: ${errorMessage(error)}`);
  }

  /**
   * The tick path with a lock: the tick's lease (one instance per tick), then, unless overlap is allowed, the job's
   * running lease (no run on two instances at once), then the run. Paused or closing is checked again after every
   * await: a tick that was waiting for the lock must not run once the job is paused or the app closes.
   */
  async #lockedTick(
    scheduledAt: Date,
    lock: Lock,
    done: (() => void) | undefined,
    verdict: ((outcome: TaskOutcome<unknown>) => void) | undefined,
  ): Promise<void> {
    const name = this.def.name;
    let lease: JobLease | null = null;
    let runLease: JobLease | null = null;
    this.#acquiring++;
    try {
      lease = await this.#acquire(
        `${name}@${this.lockTime(scheduledAt).toISOString()}`,
        this.leaseMs(scheduledAt),
        lock,
      );
      if (lease && this.def.overlap === 'skip' && !this.#halted()) {
        runLease = await this.#acquire(`${name}@running`, lock.ttl, lock);
        if (!runLease) {
          // The tick is this instance's, but a run of the job is going on another instance.
          this.skipped++;
          if (jobChannel.hasSubscribers) this.#publish('skipped', 'cluster-overlap');
          if (Logger.isLevelEnabled('debug')) this.host.logger.debug?.(JOB_SKIPPED_CLUSTER_OVERLAP(name, scheduledAt));
          return done?.();
        }
      }
    } catch (error) {
      // Unknown whether we hold the tick or the run: skip it rather than risk running it twice.
      this.skipped++;
      this.lockFailures++;
      if (jobChannel.hasSubscribers) {
        this.#publish('lock-failed', undefined, undefined, error);
        this.#publish('skipped', 'lock-failed');
      }
      this.host.logger.warn(LOCK_FAILED(name, scheduledAt, error));
      if (lease) this.#release(lease, lock);
      return done?.();
    } finally {
      this.#acquiring--;
    }
    if (!lease) {
      this.skipped++; // another instance has this tick
      if (jobChannel.hasSubscribers) this.#publish('skipped', 'other-instance');
      return done?.();
    }
    let task: Task<unknown>;
    try {
      if (this.host.closing) throw new SupervisorShutdownError(this.host.supervisor.name);
      if (this.paused) throw PAUSED;
      task = this.#start(scheduledAt, lease, verdict);
    } catch (error) {
      if (error === PAUSED) {
        this.skipped++;
        if (jobChannel.hasSubscribers) this.#publish('skipped', 'paused');
      } else this.#refused(error);
      // Not run here: give the tick (and the run) back, so another instance may still take it.
      this.#release(lease, lock);
      if (runLease) this.#release(runLease, lock);
      return done?.();
    }
    const keepAlive = this.#keepAlive(lease, runLease, lock, scheduledAt);
    await task.settled();
    // The tick's lease is not released: it expires by its TTL, so a late instance cannot take the same tick again.
    // The running lease is: the next tick may run anywhere.
    if (keepAlive) clearInterval(keepAlive);
    if (runLease) this.#release(runLease, lock);
    done?.();
  }

  /** `trigger()` of a job with a lock and overlap 'skip': the run holds the job's running lease, as a tick's does. */
  async #lockedTrigger(lock: Lock): Promise<void> {
    const name = this.def.name;
    const scheduledAt = new Date();
    let runLease: JobLease | null;
    this.#acquiring++;
    try {
      runLease = await this.#acquire(`${name}@running`, lock.ttl, lock);
    } catch (error) {
      this.lockFailures++;
      if (jobChannel.hasSubscribers) this.#publish('lock-failed', undefined, undefined, error);
      throw error;
    } finally {
      this.#acquiring--;
    }
    if (!runLease) {
      // A run of the job is going on another instance.
      this.skipped++;
      if (jobChannel.hasSubscribers) this.#publish('skipped', 'cluster-overlap');
      throw new JobRunningError(name);
    }
    const held = runLease;
    let verdict!: (outcome: TaskOutcome<unknown>) => void;
    const outcome = new Promise<TaskOutcome<unknown>>((resolve) => (verdict = resolve));
    let task: Task<unknown>;
    try {
      if (this.host.closing) throw new SupervisorShutdownError(this.host.supervisor.name);
      task = this.#start(scheduledAt, undefined, verdict, true);
    } catch (error) {
      this.#release(held, lock);
      throw error;
    }
    const keepAlive = this.#keepAlive(null, held, lock, scheduledAt);
    // Held until the method really ends, also past its timeout (the run still counts as running).
    void task.settled().then(() => {
      if (keepAlive) clearInterval(keepAlive);
      this.#release(held, lock);
    });
    const result = await outcome;
    if (result.status === 'rejected') throw result.reason;
  }

  /** Paused or closing: a tick waiting for its lock stops at the next await. */
  #halted(): boolean {
    return this.paused || this.host.closing;
  }

  /**
   * One lock call, bounded by `lock.timeout`. A lease granted after the timeout (the store answered late) is given
   * back at once: nobody here will run with it.
   */
  async #acquire(key: string, ms: number, lock: Lock): Promise<JobLease | null> {
    let timedOut = false;
    let pending: Promise<JobLease | null>;
    try {
      pending = Promise.resolve(lock.store.acquire(key, ms));
    } catch (error) {
      pending = Promise.reject(error);
    }
    try {
      return await withTimeout(pending, lock.timeout, () => {
        timedOut = true;
        return new LockTimeoutError('acquire', lock.timeout);
      });
    } finally {
      if (timedOut) {
        pending.then(
          (late) => late && this.#release(late, lock),
          () => undefined,
        );
      }
    }
  }

  /** Gives a lease back, best effort: a failed or hung release leaves it to expire by its TTL. */
  #release(lease: JobLease, lock: Lock): void {
    void withTimeout(
      Promise.resolve().then(() => lease.release()),
      lock.timeout,
      () => new LockTimeoutError('release', lock.timeout),
    ).catch(() => undefined);
  }

  /**
   * How long a tick's lease must live from now: `lock.ttl` (longer than the clock skew between instances). An
   * interval's slot needs longer (see `IntervalScheduledJob`).
   */
  protected leaseMs(_scheduledAt: Date): number {
    return this.def.lock!.ttl;
  }

  /**
   * Extends the leases every TTL/2 while the run goes: the tick's (never shortening it; none for `trigger()`) and the
   * running one.
   */
  #keepAlive(
    lease: JobLease | null,
    runLease: JobLease | null,
    lock: Lock,
    scheduledAt: Date,
  ): ReturnType<typeof setInterval> | undefined {
    const extendTick = lease?.extend ? (): Promise<boolean> => lease.extend!(this.leaseMs(scheduledAt)) : undefined;
    const extendRun = runLease?.extend ? (): Promise<boolean> => runLease.extend!(lock.ttl) : undefined;
    if (!extendTick && !extendRun) return undefined;
    let tickHeld = extendTick !== undefined;
    let runHeld = extendRun !== undefined;
    const extend = (call: () => Promise<boolean>, lost: () => void) =>
      withTimeout(Promise.resolve().then(call), lock.timeout, () => new LockTimeoutError('extend', lock.timeout)).then(
        (held) => {
          if (!held) lost();
        },
        (error: unknown) =>
          this.host.logger.warn(
            `Job "${this.def.name}" could not extend its lease (will retry): ${errorMessage(error)}`,
          ),
      );
    const timer = setInterval(
      () => {
        if (tickHeld)
          void extend(extendTick!, () => {
            tickHeld = false;
            this.host.logger.warn(LEASE_LOST(this.def.name, scheduledAt));
          });
        if (runHeld)
          void extend(extendRun!, () => {
            runHeld = false;
            this.host.logger.warn(RUN_LEASE_LOST(this.def.name));
          });
        if (!tickHeld && !runHeld) clearInterval(timer);
      },
      Math.max(1, Math.floor(lock.ttl * LOCK_EXTEND_RATIO)),
    );
    timer.unref?.();
    return timer;
  }
}
