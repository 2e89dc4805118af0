import { type DynamicModule, Module, type Provider } from '@nestjs/common';
import { ConcurrencyModule } from '../concurrency.module.js';
import { ConcurrencyOptionsError } from '../errors/concurrency-options.error.js';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';
import { InMemoryJobLock } from '../scheduling/locks/in-memory-job-lock.js';
import { ARM_JOBS_AT_BOOT } from '../scheduling/scheduling.constants.js';
import { ConcurrencyTester } from './concurrency-tester.js';
import type { ConcurrencyTestingOptions } from './interfaces/concurrency-testing-options.interface.js';
import { INVALID_TESTING_OPTION, UNKNOWN_TESTING_OPTION } from './testing.messages.js';

/** `shutdownTimeout` in tests: `app.close()` of a test that left work running does not hold the suite for 5 s. */
export const TESTING_SHUTDOWN_TIMEOUT = 500;

const TESTING_KEYS = ['armJobs'] as const;

const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

function armJobs(testing: unknown): boolean {
  if (testing === undefined) return false;
  if (!isPlainObject(testing)) throw new ConcurrencyOptionsError('', INVALID_TESTING_OPTION('', 'an object', testing));
  for (const key of Object.keys(testing)) {
    if (!(TESTING_KEYS as readonly string[]).includes(key)) {
      throw new ConcurrencyOptionsError(key, UNKNOWN_TESTING_OPTION(key, TESTING_KEYS));
    }
  }
  const { armJobs: arm } = testing;
  if (arm !== undefined && typeof arm !== 'boolean') {
    throw new ConcurrencyOptionsError('armJobs', INVALID_TESTING_OPTION('armJobs', 'true or false', arm));
  }
  return arm ?? false;
}

/**
 * The test defaults over what the test gave: a short `shutdownTimeout` and an in-memory `jobs.lock` (so `lock: true`
 * jobs boot without Redis). Anything given wins, and a value of the wrong shape is passed on untouched, so that
 * `ConcurrencyModule` refuses it with the message it gives in production.
 */
function withTestDefaults(options: unknown): ConcurrencyModuleOptions {
  if (options === undefined) options = {};
  if (!isPlainObject(options)) return options as ConcurrencyModuleOptions;
  const out: Record<string, unknown> = { ...options };
  if (!('shutdownTimeout' in out)) out.shutdownTimeout = TESTING_SHUTDOWN_TIMEOUT;
  if (out.jobs === undefined) out.jobs = { lock: new InMemoryJobLock() };
  else if (isPlainObject(out.jobs) && !('lock' in out.jobs)) out.jobs = { ...out.jobs, lock: new InMemoryJobLock() };
  return out as ConcurrencyModuleOptions;
}

/**
 * The testing kit's module (import it from `nestjs-concurrency/testing`). `forRoot(options)` is the real
 * `ConcurrencyModule.forRoot(options)`, validated the same way, with test defaults: `shutdownTimeout` 500 ms,
 * in-memory stores (the cache's L1 and an `InMemoryJobLock` unless `jobs.lock` is given), and no job timer armed at
 * boot (jobs run when the test calls `ConcurrencyTester.runJob()` / `advance()`), unless `{ armJobs: true }`.
 * `forApp()` adds the kit to an application whose own modules import `ConcurrencyModule` (forRoot or forRootAsync),
 * with that module's options as they are. Both provide `ConcurrencyTester`.
 *
 * ```ts
 * const moduleRef = await Test.createTestingModule({
 *   imports: [ConcurrencyTestingModule.forRoot()],
 *   providers: [ReportsService],
 * }).compile();
 * ```
 *
 * @publicApi
 */
@Module({})
export class ConcurrencyTestingModule {
  /** The real `ConcurrencyModule.forRoot(options)` with test defaults, and `ConcurrencyTester`. */
  static forRoot(options?: ConcurrencyModuleOptions, testing?: ConcurrencyTestingOptions): DynamicModule {
    const kit = ConcurrencyTestingModule.forApp(testing);
    return { ...kit, imports: [ConcurrencyModule.forRoot(withTestDefaults(options))] };
  }

  /** The testing kit beside an `AppModule` that already imports `ConcurrencyModule`, with its options. */
  static forApp(testing?: ConcurrencyTestingOptions): DynamicModule {
    const providers: Provider[] = [{ provide: ARM_JOBS_AT_BOOT, useValue: armJobs(testing) }, ConcurrencyTester];
    return {
      module: ConcurrencyTestingModule,
      global: true,
      providers,
      exports: [ARM_JOBS_AT_BOOT, ConcurrencyTester],
    };
  }
}
