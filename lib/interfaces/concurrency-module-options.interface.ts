import type { Keyv } from 'keyv';
import type { DurableModuleOptions, ResolvedDurableOptions } from '../durable/interfaces/durable-options.interface.js';
import type { CacheModuleOptions } from '../caching/interfaces/cache-module-options.interface.js';
import type { FanOutModuleOptions } from '../fan-out/interfaces/fan-out-module-options.interface.js';
import type { JobLock } from '../scheduling/interfaces/job-lock.interface.js';
import type { JobOverride, JobsModuleOptions } from '../scheduling/interfaces/jobs-module-options.interface.js';
import type { SupervisorOptions } from '../supervisor/interfaces/supervisor-options.interface.js';
import type {
  DashboardOptions,
  ResolvedDashboardOptions,
} from '../observability/interfaces/dashboard-options.interface.js';

/** Options of `ConcurrencyModule.forRoot()` (and what a `forRootAsync()` factory returns). Durations in ms. */
export interface ConcurrencyModuleOptions {
  /** Named supervisors; `'default'` and `'jobs'` (where scheduled jobs run) always exist. */
  supervisors?: Record<string, SupervisorOptions>;
  fanOut?: FanOutModuleOptions;
  jobs?: JobsModuleOptions;
  cache?: CacheModuleOptions;
  /** How long `app.close()` waits for running work before aborting it, in ms. Default 5000 (OTP's default). */
  shutdownTimeout?: number;
  /**
   * Durable tasks on BullMQ (`@TaskHandler`, `DurableSupervisor`). Off unless given; needs Redis and `bullmq`.
   * `false`: off on purpose (e.g. no Redis in development): a `@TaskHandler` then only logs a warning at boot, where
   * without the option it fails the boot (it would never run).
   */
  durable?: DurableModuleOptions | false;
  /**
   * The live dashboard (supervisors, jobs, fan-out, cache, durable queues), served by the module. Off unless given;
   * needs a `guard` (or `guard: false`). With `forRootAsync`, give it next to `useFactory`: its routes are fixed
   * when the module is defined.
   */
  dashboard?: DashboardOptions;
  /**
   * OpenTelemetry spans for tasks, jobs, fan-out calls and durable tasks, through `@opentelemetry/api`. On by default,
   * but spans are only made when the application registered a tracer provider before boot. `fanOutItems: true` adds a
   * span per fan-out item (off by default: one per call).
   */
  tracing?: boolean | { fanOutItems?: boolean };
}

/**
 * A class that makes the module options, for `ConcurrencyModule.forRootAsync({ useClass })` or `{ useExisting }`
 * (as `CacheOptionsFactory` is for `CacheModule`).
 */
export interface ConcurrencyOptionsFactory {
  /** Returns the options, as a `useFactory` would. */
  createConcurrencyOptions(): ConcurrencyModuleOptions | Promise<ConcurrencyModuleOptions>;
}

/** The options after validation, every default filled in. Internal: injected with `CONCURRENCY_OPTIONS`. */
export interface ResolvedConcurrencyOptions {
  /** Always holds `'default'` and `'jobs'`. */
  supervisors: Record<string, Required<SupervisorOptions>>;
  fanOut: Required<FanOutModuleOptions>;
  jobs: {
    lock: JobLock | undefined;
    overlap: 'skip' | 'allow' | 'buffer-one' | 'cancel-previous';
    timeout: number;
    cronJobs: boolean;
    intervals: boolean;
    timeouts: boolean;
    /** Runs kept per job (`jobs.history`). */
    history: number;
    /** `jobs.overrides`, by job name. */
    overrides: Map<string, JobOverride>;
    /** This instance's name in the run history (`jobs.instance`). */
    instance: string;
  };
  cache: {
    ttl: number;
    maxEntries: number;
    stores: Keyv[];
    storeTimeout: number;
    singleFlight: 'instance' | 'cluster';
    singleFlightWait: number;
    maxValueSize: number;
  };
  shutdownTimeout: number;
  /** Undefined unless `durable` is given. */
  durable?: ResolvedDurableOptions;
  /** `durable: false` was given: durable tasks are off on purpose. */
  durableOff: boolean;
  /** Undefined unless `dashboard` is given. */
  dashboard?: ResolvedDashboardOptions;
  tracing: { enabled: boolean; fanOutItems: boolean };
}
