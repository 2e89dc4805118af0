import {
  type BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
  Optional,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { getSupervisorToken } from '../supervisor/utils/get-supervisor-token.util.js';
import { JobRegistry } from './job.registry.js';
import type { JobDefinition } from './interfaces/job-definition.interface.js';
import { CronScheduledJob } from './jobs/cron-job.js';
import { IntervalScheduledJob } from './jobs/interval-job.js';
import type { JobHost, JobsSupervisor, ScheduledJob } from './jobs/scheduled-job.js';
import { TimeoutScheduledJob } from './jobs/timeout-job.js';
import { JOBS_SUPERVISOR } from '../concurrency.constants.js';
import { ARM_JOBS_AT_BOOT, DEFAULT_LOCK_TIMEOUT } from './scheduling.constants.js';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import type { TaskOutcome } from '../supervisor/interfaces/task.interface.js';
import { TaskTimeoutError } from '../errors/task-timeout.error.js';
import type { JobRun } from './interfaces/job-run.interface.js';
import { RUN_ERROR_MAX, RunHistory, historyStore } from './policies/run-history.js';
import { ClusterControl, controlStore } from './policies/cluster-control.js';
import { errorMessage } from '../utils/describe.js';
import { RESCHEDULE_IGNORED } from './scheduling.messages.js';

/**
 * Mounts the jobs' timers at bootstrap and stops them all before shutdown, before the `jobs` supervisor drains the
 * runs in progress (in its onApplicationShutdown). Internal.
 */
@Injectable()
export class JobsOrchestrator implements JobHost, OnApplicationBootstrap, BeforeApplicationShutdown {
  readonly logger = new Logger('Jobs');
  /** @internal Set by the testing kit (`ConcurrencyTester`) to hear of every failed run. */
  onJobFailure: ((job: string, error: unknown) => void) | undefined;
  #closing = false;
  /** @internal The runs of every job (in the lock store too when it keeps history). */
  readonly history: RunHistory;
  /** @internal Pause state and runtime schedules shared through the lock store; undefined without such a store. */
  readonly control: ClusterControl | undefined;
  /** @internal This instance's name in the run history. */
  readonly instance: string;
  /** Each job's schedule from its decorator and `jobs.overrides`: a runtime schedule stored over another is ignored. */
  readonly #configured = new Map<string, string | number>();

  constructor(
    @Inject(getSupervisorToken(JOBS_SUPERVISOR)) readonly supervisor: JobsSupervisor,
    readonly schedulerRegistry: SchedulerRegistry,
    private readonly jobRegistry: JobRegistry,
    @Inject(CONCURRENCY_OPTIONS) options: ResolvedConcurrencyOptions,
    @Optional() @Inject(ARM_JOBS_AT_BOOT) private readonly armAtBoot?: boolean,
  ) {
    const { lock, history, instance } = options.jobs;
    this.instance = instance;
    this.history = new RunHistory(history, historyStore(lock), DEFAULT_LOCK_TIMEOUT, this.logger);
    const store = controlStore(lock);
    this.control = store && new ClusterControl(store, this.#target, DEFAULT_LOCK_TIMEOUT, this.logger);
    jobRegistry.attach(this);
  }

  readonly runEnded = (job: string, scheduledAt: Date, startedAt: number, outcome: TaskOutcome<unknown>): void => {
    const run: JobRun = {
      scheduledAt,
      startedAt: new Date(startedAt),
      durationMs: Date.now() - startedAt,
      outcome: outcome.status === 'fulfilled' ? 'completed' : isTimeout(outcome.reason) ? 'timeout' : 'failed',
      instance: this.instance,
    };
    if (outcome.status === 'rejected') run.error = errorMessage(outcome.reason).slice(0, RUN_ERROR_MAX);
    this.history.record(job, run);
  };

  /** The job's schedule as configured at boot (decorator, then `jobs.overrides`). */
  configured(name: string): string | number | undefined {
    return this.#configured.get(name);
  }

  /** How the shared state reaches this instance's jobs. */
  readonly #target = {
    has: (job: string) => this.jobRegistry.has(job),
    pause: (job: string, paused: boolean) => this.jobRegistry.apply(job, paused),
    reschedule: (job: string, schedule: { value: string | number; base: string | number }) => {
      // Set over another configured schedule (another version of the app): this instance's configuration wins.
      if (schedule.base !== this.#configured.get(job)) return;
      try {
        this.jobRegistry.applySchedule(job, schedule.value);
      } catch (error) {
        this.logger.warn(RESCHEDULE_IGNORED(job, errorMessage(error)));
      }
    },
  };

  /** `pauseAfterFailures` pauses through `JobRegistry.pause(name)`, so a cluster-wide pause follows. */
  pauseJob(name: string): void {
    this.jobRegistry.pause(name);
  }

  get closing(): boolean {
    return this.#closing;
  }

  add(def: JobDefinition): ScheduledJob {
    const job =
      def.schedule.kind === 'cron'
        ? new CronScheduledJob(def, this)
        : def.schedule.kind === 'interval'
          ? new IntervalScheduledJob(def, this)
          : new TimeoutScheduledJob(def, this);
    this.jobRegistry.add(job);
    const schedule = def.schedule;
    if (schedule.kind !== 'timeout') {
      this.#configured.set(def.name, schedule.kind === 'cron' ? job.schedule() : schedule.ms);
    }
    if (def.disabled) job.pause();
    return job;
  }

  /** A job whose kind is switched off on this instance (`option` is false): known by name, never mounted. */
  switchedOff(name: string, option: string): void {
    this.jobRegistry.switchedOff(name, option);
  }

  onApplicationBootstrap(): void {
    if (this.armAtBoot === false) return;
    // The cluster's state is read in the background (boot never waits for the store): a job paused in the store
    // pauses here as soon as the first read answers.
    void this.control?.start();
    this.#mountAll();
  }

  #mountAll(): void {
    if (this.#closing) return;
    for (const job of this.jobRegistry.jobs()) job.mount();
  }

  beforeApplicationShutdown(): void {
    // No tick may start from here on; runs in progress are drained by the supervisor afterwards.
    this.#closing = true;
    this.control?.stop();
    for (const job of this.jobRegistry.jobs()) job.unmount();
  }
}

/** A thrown value may be a Proxy whose `getPrototypeOf` trap throws: never let `instanceof` throw here. */
function isTimeout(reason: unknown): boolean {
  try {
    return reason instanceof TaskTimeoutError;
  } catch {
    return false;
  }
}
