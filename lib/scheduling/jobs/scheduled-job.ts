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
import { JOB_FAILED, JOB_SKIPPED_OVERLAP, LEASE_LOST, LOCK_FAILED } from '../scheduling.messages.js';
import { errorMessage, errorStack } from '../../utils/describe.js';

/** The part of `TaskSupervisor` a job needs: start the run now, synchronously, tracked for shutdown. */
export interface JobsSupervisor {
  readonly name: string;
  startNow<T>(fn: (ctx: TaskContext) => T | Promise<T>, opts?: { name?: string }): Task<T>;
}

/** What jobs share: the supervisor, the registries, the logger and whether the application is closing. Internal. */
export interface JobHost {
  readonly supervisor: JobsSupervisor;
  readonly schedulerRegistry: SchedulerRegistry;
  readonly logger: LoggerService;
  readonly closing: boolean;
}

type Lock = NonNullable<JobDefinition['lock']>;

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
  protected paused = false;
  /** Ticks waiting for the lock: they count as running for the overlap guard. */
  #acquiring = 0;
  readonly #runOptions: { name: string };

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
      nextRunAt: this.nextRunAt(),
      paused: this.isPaused(),
    };
  }

  /**
   * A timer tick. Without a lock the method runs synchronously, inside this call. `done` (fixed-delay) is called once
   * the tick is over: its run ended, or it was skipped.
   */
  protected tick(scheduledAt: Date, done?: () => void): void {
    if (this.host.closing) return;
    if (this.def.overlap === 'skip' && (this.running > 0 || this.#acquiring > 0)) {
      this.skipped++;
      // Skips can be frequent: build the message only when debug logs are on.
      if (Logger.isLevelEnabled('debug'))
        this.host.logger.debug?.(JOB_SKIPPED_OVERLAP(this.def.name, scheduledAt), 'Jobs');
      done?.();
      return;
    }
    if (this.def.lock) {
      void this.#lockedTick(scheduledAt, this.def.lock, done);
      return;
    }
    let task: Task<unknown>;
    try {
      task = this.#start(scheduledAt, undefined);
    } catch (error) {
      this.#refused(error);
      done?.();
      return;
    }
    if (done) void task.settled().then(done);
  }

  /**
   * Runs the job now, on this instance (no lock), respecting overlap. Settles with the run: rejects with its error, or
   * with `TaskTimeoutError` at its `timeout` (even if the method goes on).
   */
  trigger(): Promise<void> {
    if (this.host.closing) return Promise.reject(new SupervisorShutdownError(this.host.supervisor.name));
    if (this.def.overlap === 'skip' && (this.running > 0 || this.#acquiring > 0)) {
      this.skipped++;
      return Promise.reject(new JobRunningError(this.def.name));
    }
    return new Promise((resolve, reject) => {
      this.#start(new Date(), undefined, (outcome) =>
        outcome.status === 'fulfilled' ? resolve() : reject(outcome.reason),
      );
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
  ): Task<unknown> {
    const { name, instance, methodName, timeout } = this.def;
    const startedAt = Date.now();
    // A method that returns without a promise has ended when startNow returns: count it as ended at once, so the
    // next tick of a fake-timer test (no microtask in between) does not see it running.
    let async = false;
    this.running++;
    this.runs++;
    let task: Task<unknown>;
    try {
      task = this.host.supervisor.startNow((ctx) => {
        const jobContext: JobContext = { signal: ctx.signal, name, scheduledAt, attempt: ctx.attempt };
        if (lease) jobContext.fencingToken = lease.token;
        const result = (instance as Record<string | symbol, (ctx: JobContext) => unknown>)[methodName](jobContext);
        async = typeof (result as PromiseLike<unknown> | undefined)?.then === 'function';
        return result;
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
        this.#failed(error);
        verdict?.({ status: 'rejected', reason: error });
      }, timeout);
    }
    void task.settled().then((outcome) => {
      if (async) this.#ended(startedAt);
      if (async && timeout !== undefined) {
        if (timer === undefined) return; // failed at its timeout already
        clearTimeout(timer);
      }
      if (outcome.status === 'rejected') this.#failed(outcome.reason);
      verdict?.(outcome);
    });
    return task;
  }

  #ended(startedAt: number): void {
    this.running--;
    this.lastDurationMs = Date.now() - startedAt;
  }

  #failed(error: unknown): void {
    this.failures++;
    this.lastError = error;
    this.host.logger.error(`${JOB_FAILED(this.def.name)}: ${errorMessage(error)}`, errorStack(error), 'Jobs');
  }

  /** The supervisor refused the run (shutting down, or maxChildren): the tick is skipped. */
  #refused(error: unknown): void {
    this.skipped++;
    if (error instanceof SupervisorShutdownError) return;
    this.host.logger.warn(`Job "${this.def.name}" skipped a tick: ${errorMessage(error)}`, 'Jobs');
  }

  async #lockedTick(scheduledAt: Date, lock: Lock, done: (() => void) | undefined): Promise<void> {
    const key = `${this.def.name}@${this.lockTime(scheduledAt).toISOString()}`;
    let lease: JobLease | null;
    this.#acquiring++;
    try {
      lease = await withTimeout(
        lock.store.acquire(key, lock.ttl),
        lock.timeout,
        () => new LockTimeoutError('acquire', lock.timeout),
      );
    } catch (error) {
      // Unknown whether we hold the tick: skip it rather than risk running it twice.
      this.skipped++;
      this.lockFailures++;
      this.host.logger.warn(LOCK_FAILED(this.def.name, scheduledAt, error), 'Jobs');
      return done?.();
    } finally {
      this.#acquiring--;
    }
    if (!lease) {
      this.skipped++; // another instance has this tick
      return done?.();
    }
    let task: Task<unknown>;
    try {
      if (this.host.closing) throw new SupervisorShutdownError(this.host.supervisor.name);
      task = this.#start(scheduledAt, lease);
    } catch (error) {
      this.#refused(error);
      // Not run here: give the tick back, so another instance may still take it.
      void withTimeout(lease.release(), lock.timeout, () => new LockTimeoutError('release', lock.timeout)).catch(
        () => undefined,
      );
      return done?.();
    }
    const keepAlive = this.#keepAlive(lease, lock, scheduledAt);
    await task.settled();
    // The lease is not released: it expires by its TTL, so a late instance cannot take the same tick again.
    if (keepAlive) clearInterval(keepAlive);
    done?.();
  }

  /** Extends the lease while the run outlives half its TTL. */
  #keepAlive(lease: JobLease, lock: Lock, scheduledAt: Date): ReturnType<typeof setInterval> | undefined {
    const extend = lease.extend?.bind(lease);
    if (!extend) return undefined;
    const timer = setInterval(
      () => {
        withTimeout(extend(lock.ttl), lock.timeout, () => new LockTimeoutError('extend', lock.timeout)).then(
          (held) => {
            if (held) return;
            clearInterval(timer);
            this.host.logger.warn(LEASE_LOST(this.def.name, scheduledAt), 'Jobs');
          },
          (error: unknown) =>
            this.host.logger.warn(
              `Job "${this.def.name}" could not extend its lease (will retry): ${errorMessage(error)}`,
              'Jobs',
            ),
        );
      },
      Math.max(1, Math.floor(lock.ttl * LOCK_EXTEND_RATIO)),
    );
    timer.unref?.();
    return timer;
  }
}
