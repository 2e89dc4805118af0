import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleInit,
  Optional,
} from '@nestjs/common';
import { clearTimeout, setImmediate, setTimeout } from 'node:timers';
import type { Subscription } from 'rxjs';
import { CacheService } from '../caching/cache.service.js';
import { DurableSupervisor, type FinishedChild } from '../durable/durable-supervisor.js';
import { errorMessage } from '../utils/describe.js';
import { JOBS_SUPERVISOR } from '../concurrency.constants.js';
import { FanOut } from '../fan-out/fan-out.service.js';
import { JobRunningError } from '../scheduling/errors/job-running.error.js';
import { JobRegistry } from '../scheduling/job.registry.js';
import { JobsOrchestrator } from '../scheduling/jobs.orchestrator.js';
import type { ScheduledJob } from '../scheduling/jobs/scheduled-job.js';
import { ARM_JOBS_AT_BOOT } from '../scheduling/scheduling.constants.js';
import type { SupervisorEvent } from '../supervisor/interfaces/child.interface.js';
import type { TaskOutcome } from '../supervisor/interfaces/task.interface.js';
import { SupervisorRegistry } from '../supervisor/supervisor.registry.js';
import type { TaskSupervisor } from '../supervisor/task-supervisor.js';
import { checkTimeoutMs } from '../supervisor/utils/timeout.util.js';
import type { ConcurrencyFailure } from './interfaces/concurrency-testing-options.interface.js';
import { JobClock } from './job-clock.js';
import { ADVANCING, ARMED, INVALID_ARGUMENT, NO_CONCURRENCY_MODULE, NOT_IDLE, quoted } from './testing.messages.js';

/** The default of `idle(timeoutMs)`, as `Task.await()`'s. */
const DEFAULT_IDLE_TIMEOUT = 5000;
/**
 * `idle()` also looks again this often (real clock): a job's run is counted as ended a few microtasks after its
 * supervisor's child, and a refresh may end without the cache telling. Supervisors, fan-out calls and refreshes
 * wake it at once otherwise.
 */
const IDLE_POLL_MS = 10;
/**
 * Durable tasks are read from Redis (one pipeline for all of them) at most this often while `idle()` waits; their
 * events (`DurableSupervisor.events`) wake it at once otherwise.
 */
const DURABLE_POLL_MS = 250;
/** How long `idle()` waits for the events of a durable task it found finished (so `failures()` has them). */
const DURABLE_EVENTS_GRACE_MS = 5000;

/**
 * Test helpers for an application that uses `ConcurrencyModule`: wait for its background work, run and advance its
 * jobs, collect what failed, empty its cache. Get it from a testing module that imports
 * `ConcurrencyTestingModule.forRoot()` (or `forApp()`): `moduleRef.get(ConcurrencyTester)`.
 *
 * @publicApi
 */
@Injectable()
export class ConcurrencyTester implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown {
  /** The cache of the application (the one `@Cached`, `ResponseCacheInterceptor` and `CacheService` use). */
  readonly cache: {
    /** Empties the cache (L1, stores and tags). */
    clear(): Promise<void>;
  };

  readonly #failures: ConcurrencyFailure[] = [];
  readonly #watched = new Map<TaskSupervisor, Subscription>();
  /** Wakes up `idle()` callers: something settled (a supervisor went idle, a call ended, a refresh ended). */
  #wake: (() => void)[] = [];
  #clock: JobClock | undefined;
  #durableEvents: Subscription | undefined;
  /** Durable children whose `completed` or `terminated` event has arrived. */
  readonly #durableEnded = new Set<string>();
  /** Durable children: the highest attempt whose failure event has arrived. */
  readonly #durableFailedAttempt = new Map<string, number>();
  /** Durable children found finished whose last event has not arrived yet (since when). */
  readonly #durableUnseen = new Map<string, { child: FinishedChild; since: number }>();
  /** An event arrived since Redis was last read: read it at the next look. */
  #durableDirty = true;
  #durableReadAt = 0;
  #durableBusy: string[] = [];
  #advancing = false;

  /** @internal Created by `ConcurrencyTestingModule`: inject it, or `moduleRef.get(ConcurrencyTester)`. */
  constructor(
    @Optional() private readonly supervisors?: SupervisorRegistry,
    @Optional() private readonly fanOut?: FanOut,
    @Optional() private readonly jobs?: JobRegistry,
    @Optional() private readonly orchestrator?: JobsOrchestrator,
    @Optional() private readonly cacheService?: CacheService,
    @Optional() @Inject(ARM_JOBS_AT_BOOT) private readonly armJobs?: boolean,
    @Optional() private readonly durable?: DurableSupervisor,
  ) {
    this.cache = { clear: () => this.#clearCache() };
  }

  /** Nest lifecycle hook. */
  onModuleInit(): void {
    if (!this.supervisors || !this.fanOut || !this.jobs || !this.orchestrator) throw new Error(NO_CONCURRENCY_MODULE());
    this.fanOut.watch({
      failed: (id, error) => this.#failures.push({ kind: 'fan-out', name: id, error }),
      idle: () => this.#wakeUp(),
    });
    this.orchestrator.onJobFailure = (job, error) => this.#failures.push({ kind: 'job', name: job, error });
    this.cacheService?.cache.on('refresh', this.#onRefresh);
    this.durable?.trackStarted();
    if (this.durable?.configured)
      this.#durableEvents = this.durable.events.subscribe((event) => this.#onDurable(event));
    this.#watchSupervisors();
  }

  /** Nest lifecycle hook. */
  async onApplicationBootstrap(): Promise<void> {
    // Durable events added from now on reach failures() (QueueEvents read only what is added once they listen).
    await this.durable?.watchReady();
    // The jobs' clock starts at boot, as their timers would (jobs armed at boot run on their own timers).
    if (this.armJobs === false) this.#clock = new JobClock(this.jobs!.jobs(), Date.now());
  }

  /** Nest lifecycle hook. */
  onApplicationShutdown(): void {
    for (const subscription of this.#watched.values()) subscription.unsubscribe();
    this.#watched.clear();
    this.fanOut?.watch(undefined);
    if (this.orchestrator) this.orchestrator.onJobFailure = undefined;
    this.cacheService?.cache.off('refresh', this.#onRefresh);
    this.#durableEvents?.unsubscribe();
    this.#durableEvents = undefined;
    this.#wakeUp();
  }

  /**
   * Resolves once nothing runs in the background any more: no child of any supervisor (running, or started and
   * waiting for its tick), no `map`/`settle`/`stream` call, no job run, no stale-while-revalidate refresh, no durable
   * task started from this app that has not finished (on whichever instance runs it). Work that
   * starts more work is waited for too. Rejects after `timeoutMs` (default 5000, on the real clock, whatever the test
   * runner's fake timers do) with an error naming what still runs.
   */
  async idle(timeoutMs: number = DEFAULT_IDLE_TIMEOUT): Promise<void> {
    checkTimeoutMs('ConcurrencyTester.idle()', timeoutMs);
    let expired = false;
    const timer = timeoutMs === Infinity ? undefined : setTimeout(() => ((expired = true), this.#wakeUp()), timeoutMs);
    /** Supervisors this call waits on already (one waiter each, not one per look). */
    const waited = new Set<TaskSupervisor>();
    try {
      for (;;) {
        this.#watchSupervisors();
        if ((await this.#busyAll()).length === 0) {
          // What settled may start more on a later microtask or tick (a restart, a chained call): look once more.
          await new Promise((resolve) => setImmediate(resolve));
          if ((await this.#busyAll()).length === 0) return;
        }
        if (expired) throw new Error(NOT_IDLE(timeoutMs, await this.#busyAll()));
        let wake!: () => void;
        const woken = new Promise<void>((resolve) => (wake = resolve));
        const poll = setTimeout(wake, IDLE_POLL_MS);
        this.#wake.push(wake);
        for (const supervisor of this.supervisors!.all()) {
          if (waited.has(supervisor) || supervisor.children().length === 0) continue;
          waited.add(supervisor);
          void supervisor.whenIdle().then(() => {
            waited.delete(supervisor);
            this.#wakeUp();
          });
        }
        await woken;
        clearTimeout(poll);
        this.#wake = this.#wake.filter((resolve) => resolve !== wake);
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Runs one tick of the job `name` now, on this instance, without its lock (as `JobRegistry.trigger()`), with a real
   * `JobContext` (its `scheduledAt` is the jobs' clock: boot time plus what `advance()` moved). Resolves with the
   * run's outcome once the method has ended; a run past its `timeout` is rejected with its `TaskTimeoutError`. A
   * job's return value is not kept (`value` is undefined). A run refused because one is going and `overlap` is
   * 'skip' is rejected with `JobRunningError`. Throws `UnknownJobError` for a name no job has.
   */
  async runJob(name: string): Promise<TaskOutcome<unknown>> {
    this.jobs!.get(name); // UnknownJobError, naming the known jobs
    const outcome = await this.#job(name).runTick(this.#now(), false);
    return outcome ?? { status: 'rejected', reason: new JobRunningError(name) };
  }

  /**
   * Moves the jobs' clock forward by `ms` and runs every tick their schedules (`@Cron`, `@Interval`, `@Timeout`)
   * would fire meanwhile, in time order, each through the job's tick path (overlap, lock) and settled before the
   * next one starts. Ticks of a paused job do not run. Needs no fake timers, and does not touch them.
   */
  async advance(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !(ms >= 0) || !Number.isFinite(ms)) {
      const message = INVALID_ARGUMENT('advance', 'ms', 'a finite number of ms >= 0', ms);
      throw typeof ms === 'number' ? new RangeError(message) : new TypeError(message);
    }
    const clock = this.#clock;
    if (clock === undefined) throw new Error(ARMED());
    if (this.#advancing) throw new Error(ADVANCING());
    this.#advancing = true;
    try {
      const until = clock.now + ms;
      for (let tick = clock.take(until); tick !== undefined; tick = clock.take(until)) {
        await tick.job.runTick(new Date(tick.at), true);
      }
      clock.now = until;
    } finally {
      this.#advancing = false;
    }
  }

  /**
   * Every failure since the last call (or boot), oldest first: supervised children's attempts that failed or timed
   * out (`kind: 'task'`), job runs (`'job'`), fan-out items (`'fan-out'`), and every failed or timed-out attempt
   * of a durable task on any instance sharing the Redis prefix (`'durable'`, by task name: a task that failed twice
   * then succeeded counts twice, one that failed for good once per attempt), with their names and errors. Durable
   * failures arrive as events: call it after `idle()`, which waits for the events of the tasks it waited for.
   */
  failures(): ConcurrencyFailure[] {
    this.#watchSupervisors();
    return this.#failures.splice(0);
  }

  #now(): Date {
    return new Date(this.#clock?.now ?? Date.now());
  }

  #job(name: string): ScheduledJob {
    for (const job of this.jobs!.jobs()) if (job.name === name) return job;
    throw new Error(`No job ${quoted(name)}.`); // JobRegistry.get() has thrown already
  }

  /** Names of what still runs: children per supervisor, fan-out calls, job runs, cache refreshes. */
  #busy(): string[] {
    const busy: string[] = [];
    const jobNames = new Set<string>();
    for (const job of this.jobs?.jobs() ?? []) {
      if (job.running > 0) {
        jobNames.add(job.name);
        busy.push(`job ${quoted(job.name)}`);
      }
    }
    for (const supervisor of this.supervisors?.all() ?? []) {
      for (const child of supervisor.children()) {
        // A job's run is a child of the 'jobs' supervisor, named by the job: named once, as the job.
        if (supervisor.name === JOBS_SUPERVISOR && child.name !== undefined && jobNames.has(child.name)) continue;
        const name = child.name === undefined ? child.id : `${quoted(child.name)} (${child.id})`;
        busy.push(`task ${name} of supervisor ${quoted(supervisor.name)}`);
      }
    }
    for (const id of this.fanOut?.runningCalls() ?? []) busy.push(`fan-out call ${id}`);
    for (const key of this.cacheService?.refreshingKeys() ?? []) busy.push(`cache refresh of ${quoted(key)}`);
    return busy;
  }

  /**
   * `#busy()`, and once nothing runs here, the durable tasks started from this app that have not finished on any
   * instance (read from Redis, so only then).
   */
  async #busyAll(): Promise<string[]> {
    const busy = this.#busy();
    if (busy.length !== 0 || this.durable === undefined || !this.durable.configured) return busy;
    const now = Date.now();
    if (!this.#durableDirty && now - this.#durableReadAt < DURABLE_POLL_MS) return this.#durableBusy;
    this.#durableDirty = false;
    this.#durableReadAt = now;
    try {
      const { left, finished } = await this.durable.unfinishedStarted();
      for (const child of finished) this.#durableUnseen.set(child.id, { child, since: now });
      const unseen: string[] = [];
      for (const [id, { child, since }] of this.#durableUnseen) {
        const seen =
          child.state === 'completed'
            ? this.#durableEnded.has(id)
            : (this.#durableFailedAttempt.get(id) ?? 0) >= Math.max(1, child.attempts);
        // A lost event (a reconnect) must not hold idle() for good: it waits a little, then goes on without it.
        if (seen || Date.now() - since > DURABLE_EVENTS_GRACE_MS) this.#durableUnseen.delete(id);
        else unseen.push(`durable task ${quoted(child.task)} (${id}: its events have not arrived yet)`);
      }
      this.#durableBusy = [...left.map(({ id, task }) => `durable task ${quoted(task)} (${id})`), ...unseen];
    } catch (error) {
      this.#durableBusy = [`durable tasks (Redis did not answer: ${errorMessage(error)})`];
    }
    return this.#durableBusy;
  }

  /** An event of a durable child (any instance): its failures are kept for `failures()`, and `idle()` looks again. */
  #onDurable(event: SupervisorEvent): void {
    if (event.type === 'failed' || event.type === 'timeout') {
      this.#failures.push({ kind: 'durable', name: event.name ?? event.childId, error: event.error });
      const before = this.#durableFailedAttempt.get(event.childId) ?? 0;
      this.#durableFailedAttempt.set(event.childId, Math.max(before, event.attempt ?? 1));
    } else if (event.type === 'completed' || event.type === 'terminated') {
      this.#durableEnded.add(event.childId);
    } else {
      return;
    }
    this.#durableDirty = true;
    this.#wakeUp();
  }

  /** Subscribes to the events of every supervisor not yet watched (each failed or timed-out attempt). */
  #watchSupervisors(): void {
    for (const supervisor of this.supervisors?.all() ?? []) {
      if (this.#watched.has(supervisor)) continue;
      const jobs = supervisor.name === JOBS_SUPERVISOR;
      const subscription = supervisor.events.subscribe((event) => {
        if (event.type !== 'failed' && event.type !== 'timeout') return;
        // A job's run fails as the job (with its timeout, which the supervisor does not see).
        if (jobs && event.name !== undefined && this.#isJob(event.name)) return;
        this.#failures.push({ kind: 'task', name: event.name ?? event.childId, error: event.error });
      });
      this.#watched.set(supervisor, subscription);
    }
  }

  #isJob(name: string): boolean {
    for (const job of this.jobs?.jobs() ?? []) if (job.name === name) return true;
    return false;
  }

  readonly #onRefresh = (): void => this.#wakeUp();

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = [];
    for (const resolve of wake) resolve();
  }

  async #clearCache(): Promise<void> {
    const cache = this.cacheService;
    if (cache === undefined) return;
    await cache.cache.clear();
    cache.memory.clear();
    cache.localTags.clear();
  }
}
