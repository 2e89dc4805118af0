import { Logger, type LoggerService } from '@nestjs/common';
import type { SchedulerRegistry } from '@nestjs/schedule';
import { SupervisorShutdownError } from '../../errors/supervisor-shutdown.error.js';
import { TaskTimeoutError } from '../../errors/task-timeout.error.js';
import { TaskAbortedError } from '../../errors/task-aborted.error.js';
import type { TaskContext, TaskOutcome } from '../../supervisor/interfaces/task.interface.js';
import type { Task } from '../../supervisor/task.js';
import { JobRunningError } from '../errors/job-running.error.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import type { JobContext } from '../interfaces/job-context.interface.js';
import type { JobDefinition } from '../interfaces/job-definition.interface.js';
import type { JobInfo } from '../interfaces/job-info.interface.js';
import type { CatchUpState, JobLease } from '../interfaces/job-lock.interface.js';
import { withTimeout } from '../../utils/with-timeout.js';
import { CATCH_UP_MAX_TICKS, CATCH_UP_RETRY_MS, LOCK_EXTEND_RATIO, POLICY_POLL_MS } from '../scheduling.constants.js';
import type { MissedTicks } from '../policies/catch-up.js';
import {
  CANCEL_WAIT_EXPIRED,
  CATCH_UP_FAILED,
  CATCH_UP_STARTED,
  CATCH_UP_TRUNCATED,
  PAUSED_AFTER_FAILURES,
  RECORD_TICK_FAILED,
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
  /** Pauses a job the way `JobRegistry.pause(name)` does (`pauseAfterFailures`). */
  readonly pauseJob?: (name: string) => void;
  /** Every run's end (or timeout), for the run history. */
  readonly runEnded?: (job: string, scheduledAt: Date, startedAt: number, outcome: TaskOutcome<unknown>) => void;
}

/** A tick kept for later: `overlap: 'buffer-one'` (the buffered one) or `'cancel-previous'` (waiting for the end). */
interface HeldTick {
  at: Date;
  done: (() => void) | undefined;
  verdict: ((outcome: TaskOutcome<unknown>) => void) | undefined;
  timer?: ReturnType<typeof setTimeout>;
}

const delay = (ms: number) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    timer.unref?.();
  });

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
  /** Failed runs since the last successful one (`pauseAfterFailures`). */
  consecutiveFailures = 0;
  /** Why the job paused itself; null when it did not. */
  pausedReason: 'failures' | null = null;
  /** `catchUp` to be tried again (another instance held it, or the store failed). */
  #catchUpRetry: ReturnType<typeof setTimeout> | undefined;
  /** Ticks waiting for the lock: they count as running for the overlap guard. */
  #acquiring = 0;
  /** `'buffer-one'` without a lock: the tick that runs when the current run ends. */
  #buffered: HeldTick | null = null;
  /** `'cancel-previous'` without a lock: the tick that runs once the cancelled run has ended. */
  #pending: HeldTick | null = null;
  /** `'cancel-previous'`: the runs going, to abort; runs cancelled that way do not count as failures. */
  readonly #tasks: Set<Task<unknown>> | undefined;
  readonly #cancelled: WeakSet<Task<unknown>> | undefined;
  readonly #runOptions: { name: string };
  /**
   * The job's name in its lease keys (`<key>@<tick>`, `<key>@running`, ...): encoded, so that it holds no `@` and no
   * `:` and no two jobs' keys can be equal, nor equal a store's per-job keys (`history:<job>`, ...). Plain names
   * (`Class.method`, `charge`, `hourly-report`) stay as they are.
   */
  readonly #key: string;
  /** The context the application booted in: every scheduled run sees it, whoever (re)armed the timer. */
  readonly #boot = new ContextCapture();

  constructor(
    readonly def: JobDefinition,
    protected readonly host: JobHost,
  ) {
    this.#runOptions = { name: def.name };
    this.#key = encodeURIComponent(def.name);
    if (def.overlap === 'cancel-previous') {
      this.#tasks = new Set();
      this.#cancelled = new WeakSet();
    }
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

  /** The schedule's period in ms (for cron, the gap after the next tick): the base of the overdue grace in health. */
  abstract period(): number;

  /** Subclasses call it from `resume()`: the failure count and the reason of a self-pause start again. */
  protected resumed(): void {
    this.consecutiveFailures = 0;
    this.pausedReason = null;
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
      pausedReason: this.isPaused() ? (this.pausedReason ?? 'manual') : null,
      consecutiveFailures: this.consecutiveFailures,
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
    const policy = this.def.overlap;
    if (policy !== 'allow' && (this.running > 0 || this.#acquiring > 0)) {
      if (policy === 'skip') {
        this.#skipOverlap(scheduledAt);
        done?.();
        return;
      }
      // With a lock, 'buffer-one' and 'cancel-previous' hold across the cluster: the lock path decides.
      if (lock === undefined) {
        if (policy === 'buffer-one') this.#buffer(scheduledAt, done, verdict);
        else this.#cancelPrevious(scheduledAt, done, verdict);
        return;
      }
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

  #skipOverlap(scheduledAt: Date): void {
    this.skipped++;
    if (jobChannel.hasSubscribers) this.#publish('skipped', 'overlap');
    // Skips can be frequent: build the message only when debug logs are on.
    if (Logger.isLevelEnabled('debug')) this.host.logger.debug?.(JOB_SKIPPED_OVERLAP(this.def.name, scheduledAt));
  }

  /** `'buffer-one'`: keep this tick for the end of the current run, unless one is kept already. */
  #buffer(at: Date, done: HeldTick['done'], verdict: HeldTick['verdict']): void {
    if (this.#buffered !== null) {
      this.#skipOverlap(at);
      done?.();
      return;
    }
    this.#buffered = { at, done, verdict };
  }

  /**
   * `'cancel-previous'`: abort the runs going, then run this tick once they have ended, waiting at most the job's
   * timeout. A newer tick during the wait takes the place of this one (this one is counted in `skipped`).
   */
  #cancelPrevious(at: Date, done: HeldTick['done'], verdict: HeldTick['verdict']): void {
    const replaced = this.#pending;
    if (replaced !== null) {
      clearTimeout(replaced.timer);
      this.#skipOverlap(replaced.at);
      replaced.done?.();
    }
    const held: HeldTick = { at, done, verdict };
    this.#pending = held;
    this.#abortRuns();
    const bound = this.def.timeout;
    if (bound !== undefined) {
      held.timer = setTimeout(() => {
        if (this.#pending !== held) return;
        this.#pending = null;
        this.skipped++;
        if (jobChannel.hasSubscribers) this.#publish('skipped', 'overlap');
        this.host.logger.warn(CANCEL_WAIT_EXPIRED(this.def.name, at, bound));
        done?.();
      }, bound);
      held.timer.unref?.(); // a tick waiting for a cancelled run never holds the process (or app.close()) up
    }
  }

  #abortRuns(): void {
    for (const task of this.#tasks!) {
      if (this.#cancelled!.has(task)) continue;
      this.#cancelled!.add(task);
      task.abort(new TaskAbortedError(this.def.name, "a newer tick cancelled it: overlap 'cancel-previous'"));
    }
  }

  /** Nothing runs or waits for the lock here any more: the kept tick (buffered or pending) runs now. */
  #idle(): void {
    if (this.running > 0 || this.#acquiring > 0) return;
    const next = this.#buffered ?? this.#pending;
    if (next === null) return;
    this.#buffered = this.#pending = null;
    clearTimeout(next.timer);
    if (this.paused) {
      this.skipped++;
      if (jobChannel.hasSubscribers) this.#publish('skipped', 'paused');
      next.done?.();
      return;
    }
    this.tick(next.at, next.done, next.verdict, undefined);
  }

  /**
   * Runs the job now, on this instance, respecting overlap. The tick's lease is bypassed; with a lock and overlap
   * 'skip' the job's running lease is not: taken first (rejects with `JobRunningError` if another instance runs the job,
   * with the lock's error if the store fails) and held until the method really ends. Settles with the run: rejects
   * with its error, or with `TaskTimeoutError` at its `timeout` (even if the method goes on).
   */
  trigger(): Promise<void> {
    if (this.host.closing) return Promise.reject(new SupervisorShutdownError(this.host.supervisor.name));
    // trigger() never buffers nor cancels: under every policy but 'allow', a run going makes it reject.
    if (this.def.overlap !== 'allow' && (this.running > 0 || this.#acquiring > 0)) {
      this.skipped++;
      if (jobChannel.hasSubscribers) this.#publish('skipped', 'overlap');
      return Promise.reject(new JobRunningError(this.def.name));
    }
    if (this.def.lock && this.def.overlap !== 'allow') return this.#lockedTrigger(this.def.lock);
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
    const tasks = this.#tasks;
    if (tasks !== undefined && async) tasks.add(task);
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
      tasks?.delete(task);
      const timedOut = async && timeout !== undefined && timer === undefined; // failed at its timeout already
      if (timer !== undefined) clearTimeout(timer);
      if (!timedOut) {
        if (outcome.status === 'fulfilled') this.#succeeded(startedAt);
        // A run cancelled by a newer tick (overlap: 'cancel-previous') has not failed: it was told to stop.
        else if (this.#cancelled?.has(task)) this.#cancelledRun(startedAt);
        else this.#failed(outcome.reason, startedAt);
        this.host.runEnded?.(name, scheduledAt, startedAt, outcome);
        verdict?.(outcome);
      }
      this.runSettled();
      if (this.#buffered !== null || this.#pending !== null) this.#idle();
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

  #succeeded(startedAt: number): void {
    this.consecutiveFailures = 0;
    if (jobChannel.hasSubscribers) this.#publish('completed', undefined, Date.now() - startedAt);
  }

  #cancelledRun(startedAt: number): void {
    if (jobChannel.hasSubscribers) this.#publish('cancelled', undefined, Date.now() - startedAt);
    if (Logger.isLevelEnabled('debug')) {
      this.host.logger.debug?.(
        `Job "${this.def.name}": a run ended cancelled by a newer tick (overlap 'cancel-previous').`,
      );
    }
  }

  #failed(error: unknown, startedAt: number): void {
    this.failures++;
    this.consecutiveFailures++;
    if (jobChannel.hasSubscribers) this.#publish('failed', undefined, Date.now() - startedAt, error);
    this.lastError = error;
    this.lastErrorAt = new Date();
    this.host.onJobFailure?.(this.def.name, error);
    // Called inside the run's span when the app traces: the log line names its trace.
    const traceId = this.host.supervisor.tracer?.traceId();
    const suffix = traceId === undefined ? '' : ` traceId=${traceId}`;
    this.host.logger.error(`${JOB_FAILED(this.def.name)}: ${errorMessage(error)}${suffix}`, errorStack(error));
    const limit = this.def.pauseAfterFailures;
    if (limit !== undefined && this.consecutiveFailures >= limit && !this.isPaused()) this.#pauseForFailures(limit);
  }

  /** `pauseAfterFailures`: through `JobRegistry.pause` (the host), so a cluster-wide pause follows. */
  #pauseForFailures(limit: number): void {
    this.host.logger.error(PAUSED_AFTER_FAILURES(this.def.name, limit));
    if (this.host.pauseJob) this.host.pauseJob(this.def.name);
    else this.pause();
    this.pausedReason = 'failures';
    if (jobChannel.hasSubscribers) this.#publish('paused', 'failures');
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
    catchingUp = false,
  ): Promise<void> {
    const name = this.def.name;
    const policy = this.def.overlap;
    let lease: JobLease | null = null;
    let runLease: JobLease | null = null;
    this.#acquiring++;
    try {
      lease = await this.#acquire(
        `${this.#key}@${this.lockTime(scheduledAt).toISOString()}`,
        this.leaseMs(scheduledAt),
        lock,
      );
      if (lease && this.def.catchUp !== undefined) await this.#recordTick(scheduledAt, lock);
      if (lease && policy !== 'allow' && !this.#halted()) {
        runLease = await this.#acquire(`${this.#key}@running`, lock.ttl, lock);
        // The run has just ended, but the tick kept for its end ('buffer-one', 'cancel-previous') has not taken the
        // lease yet (it polls): it goes first, and this tick comes during its run.
        if (runLease && policy !== 'skip' && !catchingUp && (await this.#kept(lock))) {
          await this.#releaseNow(runLease, lock);
          runLease = null;
        }
        // A run goes somewhere in the cluster: 'buffer-one' and 'cancel-previous' (and a caught-up tick) wait for it.
        if (!runLease && (policy !== 'skip' || catchingUp))
          runLease = await this.#waitForRun(scheduledAt, lock, catchingUp);
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
    // 'cancel-previous': a run whose running lease was taken over (this process was frozen past the TTL, and another
    // instance's newer tick started) is cancelled as if asked to: the newer tick wins, two runs do not go on together.
    const onRunLost = policy === 'cancel-previous' ? () => this.#cancel(task) : undefined;
    const keepAlive = this.#keepAlive(lease, runLease, lock, scheduledAt, onRunLost);
    const watch = policy === 'cancel-previous' ? this.#watchCancel(task, lock) : undefined;
    await task.settled();
    // The tick's lease is not released: it expires by its TTL, so a late instance cannot take the same tick again.
    // The running lease is: the next tick may run anywhere.
    if (keepAlive) clearInterval(keepAlive);
    if (watch) clearInterval(watch);
    if (runLease) this.#release(runLease, lock);
    done?.();
  }

  /**
   * `trigger()` of a job with a lock and an overlap other than 'allow': the run holds the job's running lease, as a
   * tick's does (and, under 'cancel-previous', watches for a cancel request from a tick).
   */
  async #lockedTrigger(lock: Lock): Promise<void> {
    const name = this.def.name;
    const scheduledAt = new Date();
    let runLease: JobLease | null;
    this.#acquiring++;
    try {
      runLease = await this.#acquire(`${this.#key}@running`, lock.ttl, lock);
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
    // A tick on any instance cancels a triggered run as it cancels a tick's ('cancel-previous'), and as a tick on this
    // instance does without a lock.
    const watch = this.def.overlap === 'cancel-previous' ? this.#watchCancel(task, lock) : undefined;
    // Held until the method really ends, also past its timeout (the run still counts as running).
    void task.settled().then(() => {
      if (keepAlive) clearInterval(keepAlive);
      if (watch) clearInterval(watch);
      this.#release(held, lock);
    });
    const result = await outcome;
    if (result.status === 'rejected') throw result.reason;
  }

  /**
   * Whether a tick (on any instance) waits for the job's running lease as the kept one: the `@buffered` or `@cancel`
   * lease is held. Without it a newer tick that finds the lease free between a run's end and the kept tick's next poll
   * would run first: out of order, and under 'cancel-previous' only to be cancelled by the older tick. A kept tick
   * whose instance dies holds the job up to `lock.ttl`, as a running one does. False when the store has no `peek` or
   * does not answer in time (the tick runs, as it would have).
   */
  async #kept(lock: Lock): Promise<boolean> {
    const store = lock.store;
    if (typeof store.peek !== 'function') return false;
    const key = `${this.#key}@${this.def.overlap === 'buffer-one' ? 'buffered' : 'cancel'}`;
    try {
      return await withTimeout(
        Promise.resolve().then(() => store.peek!(key)),
        lock.timeout,
        () => new LockTimeoutError('peek', lock.timeout),
      );
    } catch {
      return false;
    }
  }

  /**
   * Waits for the job's running lease, held by a run on this or another instance: for `'buffer-one'` as the one
   * buffered tick of the cluster (the `@buffered` lease; none taken: another tick is buffered, skip), for
   * `'cancel-previous'` after asking the running instance to cancel (the `@cancel` lease, which that instance
   * watches), at most the job's timeout; a caught-up tick waits at most `lock.ttl`. Resolves the running lease, or null
   * when the tick is not to run (the caller counts it skipped).
   */
  async #waitForRun(scheduledAt: Date, lock: Lock, catchingUp: boolean): Promise<JobLease | null> {
    const name = this.def.name;
    const policy = this.def.overlap;
    const claimKey = catchingUp ? undefined : `${this.#key}@${policy === 'buffer-one' ? 'buffered' : 'cancel'}`;
    const claim = claimKey === undefined ? null : await this.#acquire(claimKey, lock.ttl, lock);
    if (claimKey !== undefined && claim === null) return null;
    const started = Date.now();
    const bound = catchingUp ? lock.ttl : policy === 'cancel-previous' ? this.def.timeout : undefined;
    let extended = started;
    try {
      for (;;) {
        await delay(POLICY_POLL_MS);
        if (this.#halted()) return null;
        const run = await this.#acquire(`${this.#key}@running`, lock.ttl, lock);
        if (run) return run;
        const now = Date.now();
        if (bound !== undefined && now - started >= bound) {
          if (policy === 'cancel-previous' && !catchingUp) {
            this.host.logger.warn(CANCEL_WAIT_EXPIRED(name, scheduledAt, bound));
          }
          return null;
        }
        // The claim outlives a long wait: extended at half its TTL, so that no second tick takes it meanwhile.
        if (claim?.extend && now - extended >= lock.ttl * LOCK_EXTEND_RATIO) {
          extended = now;
          await withTimeout(claim.extend(lock.ttl), lock.timeout, () => new LockTimeoutError('extend', lock.timeout));
        }
      }
    } finally {
      // Given back before the run starts: a cancel request left behind would cancel the run this tick starts.
      if (claim) await this.#releaseNow(claim, lock);
    }
  }

  /** `'cancel-previous'` with a lock: the run watches for a cancel request from another tick, anywhere. */
  #watchCancel(task: Task<unknown>, lock: Lock): ReturnType<typeof setInterval> | undefined {
    const store = lock.store;
    if (typeof store.peek !== 'function') return undefined;
    const key = `${this.#key}@cancel`;
    let asking = false;
    const timer = setInterval(() => {
      if (asking) return;
      asking = true;
      withTimeout(store.peek!(key), lock.timeout, () => new LockTimeoutError('peek', lock.timeout))
        .then(
          (requested) => {
            if (!requested || this.#cancelled!.has(task)) return;
            clearInterval(timer);
            this.#cancel(task);
          },
          () => undefined, // the store did not answer: asked again at the next poll
        )
        .finally(() => (asking = false));
    }, POLICY_POLL_MS);
    timer.unref?.();
    return timer;
  }

  /** `'cancel-previous'`: aborts a run, which then counts as cancelled, not failed. */
  #cancel(task: Task<unknown>): void {
    if (this.#cancelled!.has(task)) return;
    this.#cancelled!.add(task);
    task.abort(new TaskAbortedError(this.def.name, "a newer tick cancelled it: overlap 'cancel-previous'"));
  }

  /** `catchUp`: the tick is recorded as the job's last before it runs (bounded; a failure is logged, the run goes). */
  async #recordTick(scheduledAt: Date, lock: Lock): Promise<void> {
    try {
      await withTimeout(
        Promise.resolve().then(() => lock.store.recordTick!(this.def.name, this.lockTime(scheduledAt).getTime())),
        lock.timeout,
        () => new LockTimeoutError('recordTick', lock.timeout),
      );
    } catch (error) {
      this.host.logger.warn(RECORD_TICK_FAILED(this.def.name, error));
    }
  }

  /** The ticks missed between `last` (exclusive) and `until` (exclusive), none before `from`. Subclasses. */
  protected missedTicks(_last: number, _from: number, _until: number): MissedTicks {
    return { ticks: [], dropped: 0 };
  }

  /**
   * `catchUp`: runs the ticks no instance ran since the job's last recorded tick, within the window and before
   * `until`, oldest first, each through the lock path (its tick lease, then the running lease, waited for). One
   * instance at a time catches up (the `@catch-up` lease, kept alive while it goes; it reads the last tick after
   * taking it, so two instances booting together run each missed tick once). The ticks it plans are stored as owed
   * (`recordCatchUp`) and marked done one by one: if it dies, the next instance to catch up runs the rest. An instance
   * that finds the lease held, or the store failing, tries again every `CATCH_UP_RETRY_MS` until it has caught up.
   * `fallback` (the late tick that found the gap) runs instead when there was nothing to catch up from: no last tick
   * recorded yet, or the store failed.
   */
  protected async catchUp(until: number, fallback?: Date): Promise<void> {
    const { catchUp, lock, name } = this.def;
    if (catchUp === undefined || lock === undefined) return;
    clearTimeout(this.#catchUpRetry);
    this.#catchUpRetry = undefined;
    const store = lock.store;
    const bounded = <T>(operation: string, call: () => T | Promise<T>): Promise<T> =>
      withTimeout(Promise.resolve().then(call), lock.timeout, () => new LockTimeoutError(operation, lock.timeout));
    let claim: JobLease | null = null;
    let claimLost = false;
    let keepAlive: ReturnType<typeof setInterval> | undefined;
    let handled = false;
    let retry = true; // until the store has answered with the job's state
    try {
      claim = await this.#acquire(`${this.#key}@catch-up`, lock.ttl, lock);
      if (claim === null) {
        // Another instance catches up now, up to about now: it covers this gap too. Asked again later, in case it dies.
        handled = true;
      } else if (!this.#halted()) {
        const held = claim;
        if (held.extend) {
          keepAlive = setInterval(
            () =>
              void bounded('extend', () => held.extend!(lock.ttl)).then(
                (ok) => (claimLost ||= !ok),
                () => undefined, // tried again at the next TTL/2
              ),
            Math.max(1, Math.floor(lock.ttl * LOCK_EXTEND_RATIO)),
          );
          keepAlive.unref?.();
        }
        const trackOwed = typeof store.catchUpState === 'function' && typeof store.recordCatchUp === 'function';
        const [last, owed] = await Promise.all([
          bounded('lastTick', () => store.lastTick!(name)),
          trackOwed ? bounded('catchUpState', () => store.catchUpState!(name)) : null,
        ]);
        retry = false;
        const from = Date.now() - catchUp.window;
        const planned = new Set<number>();
        let dropped = 0;
        if (owed && owed.done < owed.until) {
          handled = true;
          const left = this.missedTicks(owed.done, from, owed.until + 1);
          for (const t of left.ticks) planned.add(t);
          dropped += left.dropped;
        }
        if (last !== null && Number.isFinite(last)) {
          handled = true;
          const missed = this.missedTicks(last, from, until);
          for (const t of missed.ticks) planned.add(t);
          dropped += missed.dropped;
        }
        let all = [...planned].sort((x, y) => x - y);
        if (all.length > CATCH_UP_MAX_TICKS) {
          dropped += all.length - CATCH_UP_MAX_TICKS;
          all = all.slice(-CATCH_UP_MAX_TICKS);
        }
        const ticks = catchUp.mode === 'last' ? all.slice(-1) : all;
        if (catchUp.mode === 'all' && dropped > 0) {
          this.host.logger.warn(CATCH_UP_TRUNCATED(name, dropped, ticks.length));
        }
        if (ticks.length > 0) {
          const owe = (state: Partial<CatchUpState>) =>
            trackOwed
              ? bounded('recordCatchUp', () => store.recordCatchUp!(name, state)).catch((error: unknown) =>
                  this.host.logger.warn(RECORD_TICK_FAILED(name, error)),
                )
              : undefined;
          await owe({ done: ticks[0] - 1, until: ticks.at(-1)! });
          const dates = ticks.map((t) => new Date(t));
          this.host.logger.log(CATCH_UP_STARTED(name, dates, catchUp.mode));
          for (const at of dates) {
            if (this.#halted() || claimLost) break;
            // Done once taken (or found taken): a tick whose instance dies mid-run is not run again, as any tick.
            await owe({ done: at.getTime() });
            await new Promise<void>((resolve) => void this.#lockedTick(at, lock, resolve, undefined, true));
          }
          // Paused (not closing) mid-way: the rest is given up, as a paused job does not catch up on resume().
          if (this.paused && !this.host.closing) await owe({ done: ticks.at(-1)! });
        }
      }
    } catch (error) {
      this.host.logger.warn(CATCH_UP_FAILED(name, error));
    } finally {
      if (keepAlive) clearInterval(keepAlive);
      if (claim) await this.#releaseNow(claim, lock);
    }
    if (retry) this.#retryCatchUp();
    if (!handled && fallback !== undefined && !this.host.closing) this.tick(fallback);
  }

  /** `catchUp` could not run (another instance holds it, or the store failed): tried again soon. */
  #retryCatchUp(): void {
    if (this.#catchUpRetry !== undefined || this.#halted()) return;
    this.#catchUpRetry = setTimeout(() => {
      this.#catchUpRetry = undefined;
      if (!this.#halted()) void this.#boot.runInAsyncScope(this.catchUp, this, Date.now() + 1);
    }, CATCH_UP_RETRY_MS);
    this.#catchUpRetry.unref?.();
  }

  /** Subclasses call it from `unmount()`: no catch-up is tried again. */
  protected stopCatchUp(): void {
    clearTimeout(this.#catchUpRetry);
    this.#catchUpRetry = undefined;
  }

  /** Gives a lease back and waits for it (bounded; a failure leaves it to expire by its TTL). */
  async #releaseNow(lease: JobLease, lock: Lock): Promise<void> {
    await withTimeout(
      Promise.resolve().then(() => lease.release()),
      lock.timeout,
      () => new LockTimeoutError('release', lock.timeout),
    ).catch(() => undefined);
  }

  /** Paused or closing: a tick waiting for its lock stops at the next await. */
  #halted(): boolean {
    return this.paused || this.host.closing;
  }

  /**
   * One lock call, bounded by `lock.timeout`. A lease granted after the timeout (the store answered late) is given
   * back at once: nobody here will run with it. An answer that had arrived when the timer fired late (this process
   * was stalled, e.g. SIGSTOP) still counts while less than half the lease's TTL has passed since the call.
   */
  async #acquire(key: string, ms: number, lock: Lock): Promise<JobLease | null> {
    let timedOut = false;
    let pending: Promise<JobLease | null>;
    const started = Date.now();
    try {
      pending = Promise.resolve(lock.store.acquire(key, ms));
    } catch (error) {
      pending = Promise.reject(error);
    }
    try {
      return await withTimeout(
        pending,
        lock.timeout,
        () => {
          timedOut = true;
          return new LockTimeoutError('acquire', lock.timeout);
        },
        () => Date.now() - started < ms / 2,
      );
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
    onRunLost?: () => void,
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
            this.host.logger.warn(RUN_LEASE_LOST(this.def.name, onRunLost !== undefined));
            onRunLost?.();
          });
        if (!tickHeld && !runHeld) clearInterval(timer);
      },
      Math.max(1, Math.floor(lock.ttl * LOCK_EXTEND_RATIO)),
    );
    timer.unref?.();
    return timer;
  }
}
