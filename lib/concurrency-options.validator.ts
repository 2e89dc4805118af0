import { Keyv, type KeyvStoreAdapter } from 'keyv';
import { availableParallelism } from 'node:os';
import {
  DEFAULT_CACHE_MAX_ENTRIES,
  DEFAULT_CACHE_TTL,
  DEFAULT_FAN_OUT_CONCURRENCY,
  DEFAULT_MAX_RESTARTS,
  DEFAULT_MAX_SECONDS,
  DEFAULT_SHUTDOWN_TIMEOUT,
  DEFAULT_STORE_TIMEOUT,
  DEFAULT_SUPERVISOR,
  DEFAULT_TASK_TIMEOUT,
  JOBS_SUPERVISOR,
} from './concurrency.constants.js';
import { ConcurrencyOptionsError } from './errors/concurrency-options.error.js';
import { workerPoolOptions } from './fan-out/fan-out-options.validator.js';
import { MAX_TIMEOUT_MS } from './supervisor/utils/timeout.util.js';
import type {
  ConcurrencyModuleOptions,
  ResolvedConcurrencyOptions,
} from './interfaces/concurrency-module-options.interface.js';
import { describeValue } from './utils/describe.js';
import { hostname } from 'node:os';
import type { JobOverride } from './scheduling/interfaces/jobs-module-options.interface.js';
import { DEFAULT_JOB_HISTORY } from './scheduling/scheduling.constants.js';
import {
  DEFAULT_DURABLE_CONCURRENCY,
  DEFAULT_DURABLE_PREFIX,
  DEFAULT_DURABLE_STORE_TIMEOUT,
  DEFAULT_IDEMPOTENCY_WINDOW,
  DEFAULT_MAX_PAYLOAD_SIZE,
  DEFAULT_MAX_STALLS,
  DEFAULT_RETENTION,
  DEFAULT_STALLED_TIMEOUT,
} from './durable/durable.constants.js';
import type { ResolvedDurableOptions } from './durable/interfaces/durable-options.interface.js';
import { DEFAULT_MAX_VALUE_SIZE, DEFAULT_SINGLE_FLIGHT_WAIT } from './caching/caching.constants.js';
import { isRedisStore } from './caching/redis-link.js';
import type { ResolvedDashboardOptions } from './observability/interfaces/dashboard-options.interface.js';
import { DASHBOARD_PATH, dashboardPath } from './observability/dashboard/dashboard-path.js';
import { DASHBOARD_GUARD_MISSING } from './observability/observability.messages.js';
import { OVERLAP_EXPECTED, OVERLAP_POLICIES } from './scheduling/scheduling.constants.js';

const KEYS = {
  '': ['supervisors', 'fanOut', 'jobs', 'cache', 'shutdownTimeout', 'durable', 'dashboard', 'tracing'],
  supervisor: ['maxChildren', 'maxRestarts', 'maxSeconds', 'shutdownTimeout'],
  fanOut: ['concurrency', 'timeout', 'threads', 'maxThreads', 'idleTimeout', 'resourceLimits'],
  jobs: ['lock', 'overlap', 'timeout', 'cronJobs', 'intervals', 'timeouts', 'history', 'overrides', 'instance'],
  override: ['cron', 'timeZone', 'interval', 'disabled'],
  cache: ['ttl', 'maxEntries', 'stores', 'storeTimeout', 'singleFlight', 'singleFlightWait', 'maxValueSize'],
  durable: [
    'connection',
    'prefix',
    'concurrency',
    'workers',
    'stalledTimeout',
    'storeTimeout',
    'idempotencyWindow',
    'retention',
    'maxPayloadSize',
    'maxStalls',
  ],
  retention: ['completed', 'failed'],
  keep: ['count', 'age'],
  dashboard: ['path', 'guard', 'readOnly'],
  tracing: ['fanOutItems'],
} as const;

/**
 * `jobs.overrides`: the shape of each entry (a cron expression's syntax and the job's kind are checked by the jobs'
 * explorer, which knows the jobs).
 */
function jobOverrides(value: unknown): Map<string, JobOverride> {
  const out = new Map<string, JobOverride>();
  if (value === undefined) return out;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail('jobs.overrides', 'an object of { [jobName]: { cron?, interval?, timeZone?, disabled? } }', value);
  }
  for (const name of Object.keys(value)) {
    const path = `jobs.overrides[${JSON.stringify(name)}]`;
    const o = section(path, (value as Record<string, unknown>)[name], KEYS.override);
    if (o.cron !== undefined && (typeof o.cron !== 'string' || o.cron.trim() === '')) {
      fail(`${path}.cron`, 'a cron expression (a non-empty string)', o.cron);
    }
    if (o.timeZone !== undefined && (typeof o.timeZone !== 'string' || o.timeZone === '')) {
      fail(`${path}.timeZone`, 'an IANA time zone (e.g. "Europe/Paris")', o.timeZone);
    }
    if (o.interval !== undefined)
      number(`${path}.interval`, o.interval, 0, { min: 0, exclusive: true, max: MAX_TIMEOUT_MS });
    if (o.disabled !== undefined && typeof o.disabled !== 'boolean')
      fail(`${path}.disabled`, 'true or false', o.disabled);
    if (o.interval !== undefined && (o.cron !== undefined || o.timeZone !== undefined)) {
      fail(
        `${path}.interval`,
        'either interval (an @Interval job) or cron/timeZone (a @Cron job), not both',
        o.interval,
      );
    }
    out.set(name, { ...(o as JobOverride) });
  }
  return out;
}

/** `tracing`: on unless `false` (spans still need a registered tracer provider); item spans only when asked. */
function tracingOptions(value: unknown): ResolvedConcurrencyOptions['tracing'] {
  if (value === undefined || value === true) return { enabled: true, fanOutItems: false };
  if (value === false) return { enabled: false, fanOutItems: false };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail('tracing', 'true, false or { fanOutItems?: boolean }', value);
  }
  const { fanOutItems } = section('tracing', value, KEYS.tracing);
  if (fanOutItems !== undefined && typeof fanOutItems !== 'boolean')
    fail('tracing.fanOutItems', 'true or false', fanOutItems);
  return { enabled: true, fanOutItems: fanOutItems === true };
}

function fail(option: string, expected: string, got: unknown): never {
  throw new ConcurrencyOptionsError(
    option,
    `Invalid ConcurrencyModule option "${option}": expected ${expected}, got ${describeValue(got)}.`,
  );
}

function section(option: string, value: unknown, allowed: readonly string[]): Record<string, unknown> {
  if (value === undefined) return {};
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    fail(option, `an object with ${allowed.join(', ')}`, value);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      const name = option ? `${option}.${key}` : key;
      throw new ConcurrencyOptionsError(
        name,
        `Unknown ConcurrencyModule option "${name}". Allowed ${option ? `in "${option}"` : 'options'}: ${allowed.join(', ')}.`,
      );
    }
  }
  return value as Record<string, unknown>;
}

type NumberRule = { min: number; max?: number; exclusive?: boolean; integer?: boolean; infinity?: boolean };

function number(option: string, value: unknown, fallback: number, rule: NumberRule): number {
  if (value === undefined) return fallback;
  const ok =
    typeof value === 'number' &&
    !Number.isNaN(value) &&
    (rule.exclusive ? value > rule.min : value >= rule.min) &&
    (rule.max === undefined || value <= rule.max || value === Infinity) &&
    (value === Infinity ? !!rule.infinity : !rule.integer || Number.isInteger(value));
  if (!ok) {
    const kind = rule.integer ? 'an integer' : 'a number';
    const bound = rule.exclusive ? `> ${rule.min}` : `>= ${rule.min}`;
    const max = rule.max === undefined ? '' : ` and <= ${rule.max}`;
    fail(option, `${kind} ${bound}${max}${rule.infinity ? ' (or Infinity)' : ''}`, value);
  }
  return value;
}

/** Every wait: setTimeout cannot wait longer than MAX_TIMEOUT_MS (it would fire after 1 ms). */
const SHUTDOWN_MS = { min: 0, max: MAX_TIMEOUT_MS, infinity: true } satisfies NumberRule;
const POSITIVE_MS = { min: 0, exclusive: true, max: MAX_TIMEOUT_MS, infinity: true } satisfies NumberRule;

/** get/set/delete: a Keyv instance or a Keyv store adapter (`new KeyvRedis(url)`, a `Map`, ...). */
function isKeyValueStore(value: unknown): boolean {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as Keyv).get === 'function' &&
    typeof (value as Keyv).set === 'function' &&
    typeof (value as Keyv).delete === 'function'
  );
}

/** A Keyv instance, also one from another copy of the package (the same test as `@nestjs/cache-manager`). */
function isKeyvInstance(value: object): boolean {
  return value instanceof Keyv || ('opts' in value && 'hooks' in value && 'stats' in value);
}

/**
 * A `cache.stores` entry as the cache uses it: a Keyv instance as it is; a bare store adapter wrapped in
 * `new Keyv({ store })`, as `CacheModule` does (it was accepted and then failed every call).
 */
function cacheStore(option: string, value: unknown): Keyv {
  if (!isKeyValueStore(value)) {
    fail(option, 'a Keyv instance or a Keyv store adapter (e.g. new KeyvRedis(url)), or an array of them', value);
  }
  if (!isKeyvInstance(value as object)) return new Keyv({ store: value as KeyvStoreAdapter });
  const keyv = value as Keyv;
  if (typeof keyv.on !== 'function' || typeof keyv.off !== 'function') {
    fail(option, 'a Keyv instance with on() and off() (its store errors are counted from its "error" event)', value);
  }
  return keyv;
}

/** `dashboard`: undefined when not given (no route is registered then). */
function dashboardOptions(value: unknown): ResolvedDashboardOptions | undefined {
  if (value === undefined) return undefined;
  const dashboard = section('dashboard', value, KEYS.dashboard);
  const { path, guard, readOnly } = dashboard;
  if (path !== undefined && (typeof path !== 'string' || !DASHBOARD_PATH.test(path))) {
    fail('dashboard.path', 'a URL path of letters, digits, _, -, . and / (e.g. "_concurrency")', path);
  }
  if (guard === undefined) {
    throw new ConcurrencyOptionsError('dashboard.guard', DASHBOARD_GUARD_MISSING);
  }
  if (guard !== false && typeof guard !== 'function') {
    fail('dashboard.guard', 'a guard class (implements CanActivate), or false for an open dashboard', guard);
  }
  if (readOnly !== undefined && typeof readOnly !== 'boolean') fail('dashboard.readOnly', 'true or false', readOnly);
  return {
    path: dashboardPath(path),
    guard: guard as ResolvedDashboardOptions['guard'],
    readOnly: readOnly === true,
  };
}

/** `durable`: undefined when not given or `false` (then nothing durable starts and bullmq is never loaded). */
function durableOptions(value: unknown): ResolvedDurableOptions | undefined {
  if (value === undefined || value === false) return undefined;
  const durable = section('durable', value, KEYS.durable);
  const { connection, prefix, workers } = durable;
  if (typeof connection === 'string') {
    let protocol = '';
    try {
      protocol = new URL(connection).protocol;
    } catch {
      // not a URL: refused below
    }
    if (protocol !== 'redis:' && protocol !== 'rediss:') {
      // The URL may hold a password: name its kind only.
      fail('durable.connection', 'a redis:// or rediss:// URL, or ioredis options', 'a string that is not one');
    }
  } else if (connection === null || typeof connection !== 'object' || Array.isArray(connection)) {
    fail('durable.connection', 'a redis:// or rediss:// URL, or ioredis options ({ host, port, ... })', connection);
  }
  if (prefix !== undefined && (typeof prefix !== 'string' || prefix === '')) {
    fail('durable.prefix', 'a non-empty string', prefix);
  }
  if (workers !== undefined && typeof workers !== 'boolean') fail('durable.workers', 'true or false', workers);
  return {
    connection: connection as string | object,
    prefix: (prefix as string | undefined) ?? DEFAULT_DURABLE_PREFIX,
    concurrency: number('durable.concurrency', durable.concurrency, DEFAULT_DURABLE_CONCURRENCY, {
      min: 1,
      max: 10_000,
      integer: true,
    }),
    workers: workers !== false,
    // Locks are renewed every quarter of it: below 1 s a busy event loop would lose them.
    stalledTimeout: number('durable.stalledTimeout', durable.stalledTimeout, DEFAULT_STALLED_TIMEOUT, {
      min: 1000,
      max: MAX_TIMEOUT_MS,
    }),
    storeTimeout: number('durable.storeTimeout', durable.storeTimeout, DEFAULT_DURABLE_STORE_TIMEOUT, {
      min: 0,
      exclusive: true,
      max: MAX_TIMEOUT_MS,
    }),
    idempotencyWindow: number('durable.idempotencyWindow', durable.idempotencyWindow, DEFAULT_IDEMPOTENCY_WINDOW, {
      min: 1000,
      max: 365 * 24 * 3600_000,
      integer: true,
    }),
    retention: retention(durable.retention),
    maxPayloadSize: number('durable.maxPayloadSize', durable.maxPayloadSize, DEFAULT_MAX_PAYLOAD_SIZE, {
      min: 1,
      max: 512 * 1024 * 1024,
      integer: true,
    }),
    maxStalls: number('durable.maxStalls', durable.maxStalls, DEFAULT_MAX_STALLS, { min: 0, max: 1000, integer: true }),
  };
}

/** `durable.retention`: count and age (ms) of the finished children kept per task name. */
function retention(value: unknown): ResolvedDurableOptions['retention'] {
  const kinds = section('durable.retention', value, KEYS.retention);
  const keep = (kind: 'completed' | 'failed') => {
    const name = `durable.retention.${kind}`;
    const given = section(name, kinds[kind], KEYS.keep);
    return {
      count: number(`${name}.count`, given.count, DEFAULT_RETENTION.count, { min: 0, max: 10_000_000, integer: true }),
      age: number(`${name}.age`, given.age, DEFAULT_RETENTION.age, { min: 1000, max: 365 * 24 * 3600_000 }),
    };
  };
  return { completed: keep('completed'), failed: keep('failed') };
}

/**
 * Validates `ConcurrencyModule` options and fills in the defaults. Throws `ConcurrencyOptionsError` naming the first
 * offending option and the allowed values, so a typo fails boot instead of being ignored.
 */
export function resolveConcurrencyOptions(raw: ConcurrencyModuleOptions | undefined): ResolvedConcurrencyOptions {
  const top = section('', raw ?? {}, KEYS['']);
  const shutdownTimeout = number('shutdownTimeout', top.shutdownTimeout, DEFAULT_SHUTDOWN_TIMEOUT, SHUTDOWN_MS);

  const supervisors: ResolvedConcurrencyOptions['supervisors'] = {};
  const rawSupervisors = top.supervisors ?? {};
  if (rawSupervisors === null || typeof rawSupervisors !== 'object' || Array.isArray(rawSupervisors)) {
    fail('supervisors', 'an object of { [name]: SupervisorOptions }', rawSupervisors);
  }
  const names = new Set([DEFAULT_SUPERVISOR, JOBS_SUPERVISOR, ...Object.keys(rawSupervisors)]);
  for (const name of names) {
    const path = `supervisors.${name}`;
    const o = section(path, (rawSupervisors as Record<string, unknown>)[name], KEYS.supervisor);
    supervisors[name] = {
      maxChildren: number(`${path}.maxChildren`, o.maxChildren, Infinity, { min: 1, integer: true, infinity: true }),
      maxRestarts: number(`${path}.maxRestarts`, o.maxRestarts, DEFAULT_MAX_RESTARTS, { min: 0, integer: true }),
      maxSeconds: number(`${path}.maxSeconds`, o.maxSeconds, DEFAULT_MAX_SECONDS, { min: 0, exclusive: true }),
      shutdownTimeout: number(`${path}.shutdownTimeout`, o.shutdownTimeout, shutdownTimeout, SHUTDOWN_MS),
    };
  }

  const fanOut = section('fanOut', top.fanOut, KEYS.fanOut);
  const jobs = section('jobs', top.jobs, KEYS.jobs);
  if (jobs.lock !== undefined && typeof (jobs.lock as { acquire?: unknown })?.acquire !== 'function') {
    fail('jobs.lock', 'a JobLock (an object with acquire(key, ttlMs)), e.g. new RedisJobLock(redis)', jobs.lock);
  }
  if (jobs.overlap !== undefined && !OVERLAP_POLICIES.includes(jobs.overlap as string)) {
    fail('jobs.overlap', OVERLAP_EXPECTED, jobs.overlap);
  }
  // @nestjs/schedule's ScheduleModule.forRoot({ cronJobs, intervals, timeouts }) switches.
  for (const kind of ['cronJobs', 'intervals', 'timeouts'] as const) {
    if (jobs[kind] !== undefined && typeof jobs[kind] !== 'boolean') fail(`jobs.${kind}`, 'true or false', jobs[kind]);
  }
  const overrides = jobOverrides(jobs.overrides);
  if (jobs.instance !== undefined && (typeof jobs.instance !== 'string' || jobs.instance === '')) {
    fail('jobs.instance', 'a non-empty string', jobs.instance);
  }
  const cache = section('cache', top.cache, KEYS.cache);
  const rawStores = cache.stores === undefined ? [] : Array.isArray(cache.stores) ? cache.stores : [cache.stores];
  const stores = rawStores.map((store, i) =>
    cacheStore(Array.isArray(cache.stores) ? `cache.stores[${i}]` : 'cache.stores', store),
  );
  // 'cluster' needs Redis to hold the leases and carry the "value stored" messages: a @keyv/redis store (as the
  // tag index and the evictions use it), detected by its adapter (getClient() and a client that can duplicate()).
  const redisL2 = stores.some(isRedisStore);
  const singleFlight = cache.singleFlight ?? (redisL2 ? 'cluster' : 'instance');
  if (singleFlight !== 'instance' && singleFlight !== 'cluster') {
    fail('cache.singleFlight', `'instance' or 'cluster'`, singleFlight);
  }
  if (singleFlight === 'cluster' && !redisL2) {
    throw new ConcurrencyOptionsError(
      'cache.singleFlight',
      `Invalid ConcurrencyModule option "cache.singleFlight": 'cluster' needs a @keyv/redis store in cache.stores (e.g. new Keyv({ store: new KeyvRedis(url) })), where the instances share their leases; none was given. Add one, or use 'instance'.`,
    );
  }

  return {
    supervisors,
    fanOut: {
      concurrency: number('fanOut.concurrency', fanOut.concurrency, DEFAULT_FAN_OUT_CONCURRENCY, {
        min: 1,
        integer: true,
        infinity: true,
      }),
      timeout: number('fanOut.timeout', fanOut.timeout, DEFAULT_TASK_TIMEOUT, POSITIVE_MS),
      // One pool of this many worker threads per worker module (workerFn); a thread per core by default.
      threads: number('fanOut.threads', fanOut.threads, availableParallelism(), { min: 1, integer: true }),
      ...workerPoolOptions(fanOut, (option, value, fallback) =>
        number(option, value, fallback, { min: 1, integer: true, infinity: option === 'fanOut.idleTimeout' }),
      ),
    },
    jobs: {
      lock: jobs.lock as ResolvedConcurrencyOptions['jobs']['lock'],
      overlap: (jobs.overlap as ResolvedConcurrencyOptions['jobs']['overlap'] | undefined) ?? 'skip',
      timeout: number('jobs.timeout', jobs.timeout, Infinity, POSITIVE_MS),
      cronJobs: jobs.cronJobs !== false,
      intervals: jobs.intervals !== false,
      timeouts: jobs.timeouts !== false,
      history: number('jobs.history', jobs.history, DEFAULT_JOB_HISTORY, { min: 0, max: 10_000, integer: true }),
      overrides,
      instance: (jobs.instance as string | undefined) ?? `${hostname()}:${process.pid}`,
    },
    cache: {
      ttl: number('cache.ttl', cache.ttl, DEFAULT_CACHE_TTL, { min: 0, exclusive: true }),
      maxEntries: number('cache.maxEntries', cache.maxEntries, DEFAULT_CACHE_MAX_ENTRIES, {
        min: 1,
        integer: true,
      }),
      stores,
      storeTimeout: number('cache.storeTimeout', cache.storeTimeout, DEFAULT_STORE_TIMEOUT, {
        min: 0,
        exclusive: true,
        max: MAX_TIMEOUT_MS,
      }),
      singleFlight,
      // Finite: it is also the lease's lifetime in Redis (PX).
      singleFlightWait: number('cache.singleFlightWait', cache.singleFlightWait, DEFAULT_SINGLE_FLIGHT_WAIT, {
        min: 0,
        exclusive: true,
        max: MAX_TIMEOUT_MS,
      }),
      maxValueSize: number('cache.maxValueSize', cache.maxValueSize, DEFAULT_MAX_VALUE_SIZE, { min: 1, integer: true }),
    },
    shutdownTimeout,
    durable: durableOptions(top.durable),
    durableOff: top.durable === false,
    dashboard: dashboardOptions(top.dashboard),
    tracing: tracingOptions(top.tracing),
  };
}
