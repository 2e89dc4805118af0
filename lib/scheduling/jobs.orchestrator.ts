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
import { ARM_JOBS_AT_BOOT } from './scheduling.constants.js';

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

  constructor(
    @Inject(getSupervisorToken(JOBS_SUPERVISOR)) readonly supervisor: JobsSupervisor,
    readonly schedulerRegistry: SchedulerRegistry,
    private readonly jobRegistry: JobRegistry,
    @Optional() @Inject(ARM_JOBS_AT_BOOT) private readonly armAtBoot?: boolean,
  ) {}

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
    return job;
  }

  /** A job whose kind is switched off on this instance (`option` is false): known by name, never mounted. */
  switchedOff(name: string, option: string): void {
    this.jobRegistry.switchedOff(name, option);
  }

  onApplicationBootstrap(): void {
    if (this.armAtBoot === false) return;
    for (const job of this.jobRegistry.jobs()) job.mount();
  }

  beforeApplicationShutdown(): void {
    // No tick may start from here on; runs in progress are drained by the supervisor afterwards.
    this.#closing = true;
    for (const job of this.jobRegistry.jobs()) job.unmount();
  }
}
