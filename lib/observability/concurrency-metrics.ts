import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit, Optional } from '@nestjs/common';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Attributes, Counter, Histogram, Meter, ObservableGauge, ObservableResult } from '@opentelemetry/api';
import { CONCURRENCY_CHANNELS, METER_NAME } from './observability.constants.js';
import type {
  CacheMessage,
  FanOutMessage,
  JobMessage,
  SupervisorMessage,
} from './interfaces/channel-messages.interface.js';
import { loadOpenTelemetryApi } from './otel.loader.js';
import { CacheService } from '../caching/cache.service.js';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import { DurableSupervisor } from '../durable/durable-supervisor.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import { withTimeout } from '../utils/with-timeout.js';
import { NO_ANSWER } from './observability.messages.js';
import { TRACER_VERSION } from './tracing/tracing.constants.js';
import { JobRegistry } from '../scheduling/job.registry.js';
import { SupervisorRegistry } from '../supervisor/supervisor.registry.js';

/** Seconds: OpenTelemetry's unit for durations (`s`), from the ms the messages carry. */
const seconds = (ms: number | undefined): number => (ms ?? 0) / 1000;

/** Buckets for task and job durations in seconds, from 1 ms to 5 minutes. */
const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/**
 * @internal The instruments, created from one meter, fed by the module's own diagnostics channels. Names follow
 * OpenTelemetry's conventions: a `concurrency.` namespace, dot-separated, durations as histograms in seconds, counts
 * with a `{unit}` annotation, the detail in attributes.
 */
export class ConcurrencyInstruments {
  private readonly taskStarts: Counter;
  private readonly taskFailures: Counter;
  private readonly taskRestarts: Counter;
  private readonly taskDuration: Histogram;
  private readonly jobRuns: Counter;
  private readonly jobDuration: Histogram;
  private readonly jobSkips: Counter;
  private readonly jobLockFailures: Counter;
  private readonly fanOutItems: Counter;
  private readonly fanOutTimeouts: Counter;
  private readonly cacheLookups: Counter;
  private readonly cacheErrors: Counter;
  /** Gauges, observed at collection: each application adds its callbacks (`ConcurrencyMetrics`). */
  readonly runningChildren: ObservableGauge;
  readonly runningJobs: ObservableGauge;
  readonly cacheEntries: ObservableGauge;
  readonly durableQueueDepth: ObservableGauge;

  constructor(meter: Meter) {
    this.durableQueueDepth = meter.createObservableGauge('concurrency.durable.queue.depth', {
      description: 'Durable tasks per task name and state (waiting or delayed, running, failed), as Redis counts them.',
      unit: '{task}',
    });
    this.runningChildren = meter.createObservableGauge('concurrency.task.running', {
      description: 'Live children (running or waiting to restart), per supervisor.',
      unit: '{task}',
    });
    this.runningJobs = meter.createObservableGauge('concurrency.job.running', {
      description: 'Runs in progress, per job.',
      unit: '{run}',
    });
    this.cacheEntries = meter.createObservableGauge('concurrency.cache.entries', {
      description: 'Entries in the in-memory cache (L1).',
      unit: '{entry}',
    });
    const advice = { explicitBucketBoundaries: DURATION_BUCKETS };
    this.taskStarts = meter.createCounter('concurrency.task.starts', {
      description: 'Supervised task attempts started.',
      unit: '{task}',
    });
    this.taskFailures = meter.createCounter('concurrency.task.failures', {
      description: 'Supervised task attempts that failed (threw, rejected or timed out).',
      unit: '{task}',
    });
    this.taskRestarts = meter.createCounter('concurrency.task.restarts', {
      description: 'Supervised tasks restarted by their restart policy.',
      unit: '{restart}',
    });
    this.taskDuration = meter.createHistogram('concurrency.task.duration', {
      description: 'How long supervised task attempts ran, by outcome.',
      unit: 's',
      advice,
    });
    this.jobRuns = meter.createCounter('concurrency.job.runs', {
      description: 'Scheduled job runs, by outcome.',
      unit: '{run}',
    });
    this.jobDuration = meter.createHistogram('concurrency.job.duration', {
      description: 'How long scheduled job runs took, by outcome.',
      unit: 's',
      advice,
    });
    this.jobSkips = meter.createCounter('concurrency.job.skips', {
      description: 'Scheduled job ticks skipped, by reason.',
      unit: '{tick}',
    });
    this.jobLockFailures = meter.createCounter('concurrency.job.lock.failures', {
      description: 'Job lock calls that failed or timed out (the tick is skipped).',
      unit: '{failure}',
    });
    this.fanOutItems = meter.createCounter('concurrency.fan_out.items', {
      description: 'Fan-out items settled (map, settle, stream), by outcome.',
      unit: '{item}',
    });
    this.fanOutTimeouts = meter.createCounter('concurrency.fan_out.timeouts', {
      description: 'Fan-out items that timed out.',
      unit: '{item}',
    });
    this.cacheLookups = meter.createCounter('concurrency.cache.lookups', {
      description: 'Cache reads, by result: hit, miss, stale or coalesced.',
      unit: '{lookup}',
    });
    this.cacheErrors = meter.createCounter('concurrency.cache.errors', {
      description: 'Cache store errors and failed background refreshes.',
      unit: '{error}',
    });
  }

  readonly onSupervisor = (message: unknown): void => {
    const m = message as SupervisorMessage;
    const attributes: Attributes = { 'concurrency.supervisor': m.supervisor };
    switch (m.type) {
      case 'started':
        this.taskStarts.add(1, attributes);
        return;
      case 'restarted':
        this.taskRestarts.add(1, attributes);
        return;
      case 'max-restarts':
        return;
      case 'failed':
      case 'timeout':
        this.taskFailures.add(1, { ...attributes, 'error.type': m.type === 'timeout' ? 'timeout' : 'error' });
      // falls through
      default:
        this.taskDuration.record(seconds(m.durationMs), { ...attributes, 'concurrency.outcome': m.type });
    }
  };

  readonly onJob = (message: unknown): void => {
    const m = message as JobMessage;
    const attributes: Attributes = { 'concurrency.job': m.job, 'concurrency.job.kind': m.kind };
    switch (m.type) {
      case 'completed':
      case 'failed':
        attributes['concurrency.outcome'] = m.type;
        this.jobRuns.add(1, attributes);
        this.jobDuration.record(seconds(m.durationMs), attributes);
        return;
      case 'skipped':
        attributes['concurrency.job.skip_reason'] = m.reason ?? 'unknown';
        this.jobSkips.add(1, attributes);
        return;
      case 'lock-failed':
        this.jobLockFailures.add(1, attributes);
        return;
      default:
    }
  };

  readonly onFanOut = (message: unknown): void => {
    const m = message as FanOutMessage;
    if (m.type !== 'call-ended') return;
    const failures = m.failures ?? 0;
    const timeouts = m.timeouts ?? 0;
    const fulfilled = (m.items ?? 0) - failures;
    if (fulfilled > 0) this.fanOutItems.add(fulfilled, { 'concurrency.outcome': 'fulfilled' });
    if (failures - timeouts > 0) this.fanOutItems.add(failures - timeouts, { 'concurrency.outcome': 'rejected' });
    if (timeouts > 0) {
      this.fanOutItems.add(timeouts, { 'concurrency.outcome': 'timeout' });
      this.fanOutTimeouts.add(timeouts);
    }
  };

  readonly onCache = (message: unknown): void => {
    const m = message as CacheMessage;
    if (m.type === 'error' || m.type === 'refresh-error') {
      this.cacheErrors.add(1, { 'error.type': m.type === 'error' ? 'store' : 'refresh' });
    } else this.cacheLookups.add(1, { 'concurrency.cache.result': m.type });
  };
}

/** One subscription per process, shared by every application that uses the module (no event counted twice). */
let shared: { users: number; instruments: ConcurrencyInstruments } | undefined;

const ROUTES: Array<[string, keyof ConcurrencyInstruments]> = [
  [CONCURRENCY_CHANNELS.supervisor, 'onSupervisor'],
  [CONCURRENCY_CHANNELS.job, 'onJob'],
  [CONCURRENCY_CHANNELS.fanOut, 'onFanOut'],
  [CONCURRENCY_CHANNELS.cache, 'onCache'],
  // Durable attempts run on this instance: the same instruments, under concurrency.supervisor = 'durable'.
  [CONCURRENCY_CHANNELS.durable, 'onSupervisor'],
];

/**
 * @internal OpenTelemetry metrics through `@opentelemetry/api`: at boot, when the package is installed and the
 * application has registered a meter provider (an SDK), the module subscribes to its diagnostics channels and feeds
 * the instruments. Without either, nothing subscribes and the channels stay free.
 */
@Injectable()
export class ConcurrencyMetrics implements OnModuleInit, OnApplicationShutdown {
  private active = false;

  constructor(
    @Inject(CONCURRENCY_OPTIONS) private readonly options: ResolvedConcurrencyOptions,
    private readonly supervisors: SupervisorRegistry,
    private readonly jobs: JobRegistry,
    private readonly cache: CacheService,
    @Optional() private readonly durable?: DurableSupervisor,
  ) {}

  readonly #observeChildren = (result: ObservableResult): void => {
    for (const sup of this.supervisors.all())
      result.observe(sup.childrenPreview(0).total, { 'concurrency.supervisor': sup.name });
  };
  readonly #observeJobs = (result: ObservableResult): void => {
    for (const job of this.jobs.list()) result.observe(job.running, { 'concurrency.job': job.name });
  };
  readonly #observeCache = (result: ObservableResult): void => {
    result.observe((this.cache.memory as { size?: number }).size ?? 0);
  };

  /**
   * Read from Redis at collection, bounded by `durable.storeTimeout`: a slow or absent Redis reports nothing for this
   * collection instead of holding the exporter up.
   */
  readonly #observeDurable = async (result: ObservableResult): Promise<void> => {
    const ms = this.options.durable!.storeTimeout;
    let queues: Awaited<ReturnType<DurableSupervisor['queueCounts']>>;
    try {
      queues = await withTimeout(this.durable!.queueCounts(), ms, () => new Error(NO_ANSWER(ms)));
    } catch {
      return;
    }
    for (const q of queues) {
      for (const state of ['waiting', 'running', 'failed'] as const) {
        result.observe(q[state], { 'concurrency.durable.task': q.task, 'concurrency.durable.state': state });
      }
    }
  };

  private gauges(instruments: ConcurrencyInstruments, on: boolean): void {
    const pairs: Array<[ObservableGauge, (result: ObservableResult) => void | Promise<void>]> = [
      [instruments.runningChildren, this.#observeChildren],
      [instruments.runningJobs, this.#observeJobs],
      [instruments.cacheEntries, this.#observeCache],
    ];
    // Only when durable tasks are configured: without them there is no queue to read.
    if (this.durable !== undefined && this.options.durable !== undefined) {
      pairs.push([instruments.durableQueueDepth, this.#observeDurable]);
    }
    for (const [gauge, callback] of pairs) {
      if (on) gauge.addCallback(callback);
      else gauge.removeCallback(callback);
    }
  }

  async onModuleInit(): Promise<void> {
    if (shared !== undefined) {
      shared.users++;
      this.active = true;
      this.gauges(shared.instruments, true);
      return;
    }
    const api = await loadOpenTelemetryApi();
    if (api === undefined) return;
    const meter = api.metrics.getMeter(METER_NAME, TRACER_VERSION);
    // No SDK registered: the global provider hands out no-op meters; subscribing would only cost.
    if (meter.constructor === api.createNoopMeter().constructor) return;
    if (shared !== undefined) {
      (shared as { users: number }).users++; // another application subscribed while this one loaded the api
    } else {
      const instruments = new ConcurrencyInstruments(meter);
      for (const [name, handler] of ROUTES) subscribe(name, instruments[handler] as (message: unknown) => void);
      shared = { users: 1, instruments };
    }
    this.active = true;
    this.gauges(shared!.instruments, true);
  }

  onApplicationShutdown(): void {
    if (!this.active || shared === undefined) return;
    this.active = false;
    this.gauges(shared.instruments, false);
    if (--shared.users > 0) return;
    for (const [name, handler] of ROUTES) unsubscribe(name, shared.instruments[handler] as (message: unknown) => void);
    shared = undefined;
  }
}
