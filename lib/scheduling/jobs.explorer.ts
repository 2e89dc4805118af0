import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { CronTime } from 'cron';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import { InvalidJobError } from './errors/invalid-job.error.js';
import { ConcurrencyOptionsError } from '../errors/concurrency-options.error.js';
import type { JobOverride } from './interfaces/jobs-module-options.interface.js';
import type { JobDefinition } from './interfaces/job-definition.interface.js';
import type { JobLock } from './interfaces/job-lock.interface.js';
import type { JobMetadata } from './interfaces/job-metadata.interface.js';
import type { CronJobOptions, LockableJobOptions } from './interfaces/job-options.interface.js';
import { JobsOrchestrator } from './jobs.orchestrator.js';
import { DEFAULT_LOCK_TIMEOUT, DEFAULT_LOCK_TTL, OVERLAP_EXPECTED, OVERLAP_POLICIES } from './scheduling.constants.js';
import { getJobMetadata } from './scheduling-metadata.accessor.js';
import {
  CATCH_UP_KIND,
  CATCH_UP_NO_LOCK,
  STORE_LACKS,
  DUPLICATE_JOB,
  INVALID_CRON,
  INVALID_MS,
  INVALID_OPTION,
  LOCK_FIXED_DELAY,
  NO_LOCK,
  OVERRIDE_INVALID,
  OVERRIDE_KIND,
  REQUEST_SCOPED,
  UNKNOWN_OVERRIDE,
  where as at,
} from './scheduling.messages.js';
import { errorMessage } from '../utils/describe.js';
import { discoverMethods } from '../utils/discover-methods.js';

/** The store of a job that is never mounted (its kind switched off) and has no lock store here: never called. */
const UNMOUNTED: JobLock = {
  acquire: () => Promise.reject(new Error('This job is not mounted on this instance.')),
};

/** The module option that switches each kind of job on this instance (as `ScheduleModule.forRoot()`'s). */
const SWITCHES = { cron: 'cronJobs', interval: 'intervals', timeout: 'timeouts' } as const;

/** setTimeout's largest delay; a longer one fires after 1 ms. */
const MAX_DELAY = 2_147_483_647;

const isMs = (value: unknown, min: number): value is number =>
  typeof value === 'number' && Number.isFinite(value) && value >= min && value <= MAX_DELAY;

/** cron's error for an expression on its own, or undefined when it parses. */
const expressionError = (cronTime: unknown): unknown => {
  try {
    new CronTime(cronTime as string);
    return undefined;
  } catch (error) {
    return error;
  }
};

/**
 * The job's metadata with its schedule from `jobs.overrides[name]`, checked here so that a refusal names the option
 * (the decorator's own values are checked by `define`, naming the method).
 */
function overridden(meta: JobMetadata, o: JobOverride, name: string): JobMetadata {
  const path = (option: string) => `jobs.overrides[${JSON.stringify(name)}].${option}`;
  const wrongKind = (option: string): never => {
    throw new ConcurrencyOptionsError(path(option), OVERRIDE_KIND(name, option, meta.kind));
  };
  if (meta.kind === 'timeout') {
    if (o.cron !== undefined) wrongKind('cron');
    if (o.timeZone !== undefined) wrongKind('timeZone');
    if (o.interval !== undefined) wrongKind('interval');
    return meta;
  }
  if (meta.kind === 'interval') {
    if (o.cron !== undefined) wrongKind('cron');
    if (o.timeZone !== undefined) wrongKind('timeZone');
    if (o.interval === undefined) return meta;
    // The first tick is one period after boot unless the decorator set initialDelay: the new period, then.
    return { ...meta, ms: o.interval };
  }
  if (o.interval !== undefined) wrongKind('interval');
  if (o.cron === undefined && o.timeZone === undefined) return meta;
  const options = { ...meta.options } as CronJobOptions & { utcOffset?: unknown };
  const cronTime = o.cron ?? meta.cronTime;
  if (o.timeZone !== undefined) {
    options.timeZone = o.timeZone;
    delete options.utcOffset;
  }
  try {
    new CronTime(cronTime as string, (options.timeZone ?? null) as null, options.utcOffset as number | undefined);
  } catch (error) {
    const refused = o.cron !== undefined ? expressionError(o.cron) : undefined;
    const option = refused !== undefined || o.timeZone === undefined ? 'cron' : 'timeZone';
    throw new ConcurrencyOptionsError(
      path(option),
      OVERRIDE_INVALID(name, option, option === 'cron' ? cronTime : o.timeZone, errorMessage(refused ?? error)),
    );
  }
  return { ...meta, cronTime, options };
}

/**
 * Finds the methods decorated with `@Cron`, `@Interval` and `@Timeout` in every provider and controller, validates
 * them (an invalid one fails `app.init()` with a message naming class, method and value) and hands them to the
 * orchestrator. Internal.
 */
@Injectable()
export class JobsExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly orchestrator: JobsOrchestrator,
    @Inject(CONCURRENCY_OPTIONS) private readonly options: ResolvedConcurrencyOptions,
  ) {}

  onModuleInit(): void {
    const seen = new Map<string, string>();
    const overrides = this.options.jobs.overrides;
    for (const { metadata, instance, className, methodName, staticTree } of discoverMethods(
      this.discovery,
      this.scanner,
      getJobMetadata,
    )) {
      if (!staticTree) throw new InvalidJobError(REQUEST_SCOPED(className, methodName));
      // ScheduleModule.forRoot({ cronJobs, intervals, timeouts }): a kind switched off is validated, never mounted.
      const option = SWITCHES[metadata.kind];
      const mounted = this.options.jobs[option];
      const name = (metadata.options as { name?: unknown } | undefined)?.name;
      const override = overrides.get(typeof name === 'string' && name !== '' ? name : `${className}.${methodName}`);
      const meta = override
        ? overridden(metadata, override, typeof name === 'string' ? name : `${className}.${methodName}`)
        : metadata;
      const def = this.define(meta, instance as object, className, methodName, mounted);
      if (override?.disabled !== undefined) {
        if (def.schedule.kind === 'cron') def.schedule.disabled = override.disabled;
        else def.disabled = override.disabled;
      }
      const first = seen.get(def.name);
      if (first) throw new InvalidJobError(DUPLICATE_JOB(def.name, first, def.where));
      seen.set(def.name, def.where);
      if (mounted) this.orchestrator.add(def);
      else this.orchestrator.switchedOff(def.name, `jobs.${option}`);
    }
    for (const name of overrides.keys()) {
      if (!seen.has(name))
        throw new ConcurrencyOptionsError(`jobs.overrides`, UNKNOWN_OVERRIDE(name, [...seen.keys()]));
    }
  }

  private define(
    meta: JobMetadata,
    instance: object,
    className: string,
    methodName: string,
    mounted: boolean,
  ): JobDefinition {
    const w = at(className, methodName);
    const options: LockableJobOptions = meta.options ?? {};
    const fail = (option: string, expected: string, got: unknown): never => {
      throw new InvalidJobError(INVALID_OPTION(w, option, expected, got));
    };
    if (options.name !== undefined && (typeof options.name !== 'string' || options.name === '')) {
      fail('name', 'a non-empty string', options.name);
    }
    if (meta.kind !== 'cron' && meta.givenName !== undefined && meta.givenName !== options.name) {
      fail('name', `${JSON.stringify(options.name)} (the name argument) or no name option`, meta.givenName);
    }
    if (options.overlap !== undefined && !OVERLAP_POLICIES.includes(options.overlap)) {
      fail('overlap', OVERLAP_EXPECTED, options.overlap);
    }
    const pauseAfter = options.pauseAfterFailures;
    if (pauseAfter !== undefined && !(Number.isSafeInteger(pauseAfter) && pauseAfter >= 1)) {
      fail('pauseAfterFailures', 'a whole number of failed runs >= 1', pauseAfter);
    }
    if (options.timeout !== undefined && !(isMs(options.timeout, 0) && options.timeout > 0)) {
      fail('timeout', 'a positive number of ms', options.timeout);
    }
    const lock = meta.kind === 'timeout' ? undefined : this.lock(options.lock, w, fail, mounted);
    const jobs = this.options.jobs;
    const overlap = options.overlap ?? jobs.overlap;
    const schedule = this.schedule(meta, w, lock !== undefined, fail);
    const catchUp = this.catchUp(meta, schedule, w, lock, mounted, fail);
    if (overlap === 'cancel-previous' && lock !== undefined && mounted && typeof lock.store.peek !== 'function') {
      throw new InvalidJobError(STORE_LACKS(w, "overlap: 'cancel-previous'", 'peek'));
    }
    // One object per job, built once (a spread of a shared base showed up in the 10,000-job boot profile).
    const def: JobDefinition = {
      name: options.name ?? `${className}.${methodName}`,
      where: w,
      instance,
      methodName,
      overlap,
      timeout: options.timeout ?? (Number.isFinite(jobs.timeout) ? jobs.timeout : undefined),
      lock,
      schedule,
    };
    if (catchUp !== undefined) def.catchUp = catchUp;
    if (pauseAfter !== undefined) def.pauseAfterFailures = pauseAfter;
    return def;
  }

  /** `catchUp`: a @Cron or a fixed-rate @Interval, with a lock whose store keeps the last tick. */
  private catchUp(
    meta: JobMetadata,
    schedule: JobDefinition['schedule'],
    w: string,
    lock: JobDefinition['lock'],
    mounted: boolean,
    fail: (option: string, expected: string, got: unknown) => never,
  ): JobDefinition['catchUp'] {
    const value = (meta.options as { catchUp?: unknown } | undefined)?.catchUp;
    if (value === undefined) return undefined;
    if (typeof value !== 'object' || value === null) return fail('catchUp', '{ window, mode? }', value);
    const { window, mode } = value as { window?: unknown; mode?: unknown };
    if (!(isMs(window, 0) && window > 0)) fail('catchUp.window', 'a positive number of ms', window);
    if (mode !== undefined && mode !== 'last' && mode !== 'all') fail('catchUp.mode', `'last' or 'all'`, mode);
    if (schedule.kind === 'timeout') throw new InvalidJobError(CATCH_UP_KIND(w, 'a @Timeout'));
    if (schedule.kind === 'interval' && schedule.mode === 'fixed-delay') {
      throw new InvalidJobError(CATCH_UP_KIND(w, "mode: 'fixed-delay'"));
    }
    if (lock === undefined) throw new InvalidJobError(CATCH_UP_NO_LOCK(w));
    if (mounted) {
      for (const method of ['lastTick', 'recordTick'] as const) {
        if (typeof lock.store[method] !== 'function') throw new InvalidJobError(STORE_LACKS(w, 'catchUp', method));
      }
    }
    // A cron tick that fires late (a stall) is caught up at once rather than dropped by cron's threshold.
    if (schedule.kind === 'cron' && schedule.threshold === undefined) schedule.threshold = window as number;
    return { window: window as number, mode: (mode as 'last' | 'all' | undefined) ?? 'last' };
  }

  private schedule(
    meta: JobMetadata,
    w: string,
    locked: boolean,
    fail: (option: string, expected: string, got: unknown) => never,
  ): JobDefinition['schedule'] {
    if (meta.kind === 'timeout') {
      if (!isMs(meta.ms, 0)) throw new InvalidJobError(INVALID_MS(w, 'timeout', meta.ms));
      return { kind: 'timeout', ms: meta.ms };
    }
    if (meta.kind === 'interval') {
      if (!isMs(meta.ms, 0) || meta.ms <= 0) throw new InvalidJobError(INVALID_MS(w, 'interval', meta.ms));
      const o = meta.options;
      if (o.mode !== undefined && o.mode !== 'fixed-rate' && o.mode !== 'fixed-delay') {
        fail('mode', `'fixed-rate' or 'fixed-delay'`, o.mode);
      }
      if (o.initialDelay !== undefined && !isMs(o.initialDelay, 0)) {
        fail('initialDelay', 'a number of ms >= 0', o.initialDelay);
      }
      if (o.mode === 'fixed-delay' && locked) throw new InvalidJobError(LOCK_FIXED_DELAY(w));
      return { kind: 'interval', ms: meta.ms, mode: o.mode ?? 'fixed-rate', initialDelay: o.initialDelay ?? meta.ms };
    }

    const o = meta.options;
    const zone = o as { timeZone?: unknown; utcOffset?: unknown };
    if (zone.timeZone != null && zone.utcOffset != null) {
      fail('timeZone', 'either timeZone or utcOffset, not both', `${String(zone.timeZone)} and utcOffset`);
    }
    if (o.initialDelay !== undefined && !isMs(o.initialDelay, 0)) {
      fail('initialDelay', 'a number of ms >= 0', o.initialDelay);
    }
    // cron parses (and rejects) the expression and the time zone; its message names neither: wrap it.
    try {
      new CronTime(meta.cronTime as string, zone.timeZone as null, zone.utcOffset as number | undefined);
    } catch (error) {
      const option = zone.utcOffset != null ? 'utcOffset' : zone.timeZone != null ? 'timeZone' : undefined;
      // Error path only: parse the expression alone to tell which of the two cron refused.
      const refused = option === undefined ? error : expressionError(meta.cronTime);
      if (refused === undefined) {
        const cause = errorMessage(error);
        throw new InvalidJobError(INVALID_OPTION(w, option!, `a valid ${option} (${cause})`, zone[option!]), {
          cause: error,
        });
      }
      const cause = errorMessage(refused);
      throw new InvalidJobError(INVALID_CRON(w, meta.cronTime, cause), { cause: refused });
    }
    return {
      kind: 'cron',
      cronTime: meta.cronTime as string,
      timeZone: o.timeZone as string | undefined,
      utcOffset: o.utcOffset as number | undefined,
      unrefTimeout: o.unrefTimeout,
      threshold: o.threshold,
      disabled: !!o.disabled,
      initialDelay: o.initialDelay ?? 0,
    };
  }

  private lock(
    value: LockableJobOptions['lock'],
    w: string,
    fail: (option: string, expected: string, got: unknown) => never,
    mounted: boolean,
  ): JobDefinition['lock'] {
    if (value === undefined || value === false) return undefined;
    const o = value === true ? {} : value;
    if (typeof o !== 'object' || o === null) return fail('lock', 'true or { store?, ttl?, timeout? }', value);
    if (o.store !== undefined && typeof o.store?.acquire !== 'function') {
      fail('lock.store', 'a JobLock (an object with acquire(key, ttlMs))', o.store);
    }
    if (o.ttl !== undefined && !(isMs(o.ttl, 0) && o.ttl > 0)) fail('lock.ttl', 'a positive number of ms', o.ttl);
    if (o.timeout !== undefined && !(isMs(o.timeout, 0) && o.timeout > 0)) {
      fail('lock.timeout', 'a positive number of ms', o.timeout);
    }
    const store = o.store ?? this.options.jobs.lock;
    // A lock store is deployment configuration, not part of the job: an instance that does not run the job (its kind
    // switched off, e.g. an API-only node) needs none.
    if (!store && mounted) throw new InvalidJobError(NO_LOCK(w));
    return { store: store ?? UNMOUNTED, ttl: o.ttl ?? DEFAULT_LOCK_TTL, timeout: o.timeout ?? DEFAULT_LOCK_TIMEOUT };
  }
}
