import { CACHE_MANAGER } from '@nestjs/cache-manager';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Test } from '@nestjs/testing';
import {
  ConcurrencyModule,
  type ConcurrencyModuleOptions,
  ConcurrencyOptionsError,
  type ConcurrencyOptionsFactory,
  getSupervisorToken,
  MaxChildrenError,
  type TaskContext,
  type TaskSupervisor,
} from 'nestjs-concurrency';

async function boot(options: ConcurrencyModuleOptions) {
  @Module({ imports: [ConcurrencyModule.forRoot(options)] })
  class AppModule {}
  const app = await NestFactory.create(AppModule, { abortOnError: false, logger: false });
  await app.init();
  return app;
}

describe('ConcurrencyModule', () => {
  it('boots with defaults from one line and brings @nestjs/schedule and @nestjs/cache-manager along', async () => {
    const moduleRef = await Test.createTestingModule({ imports: [ConcurrencyModule.forRoot()] }).compile();
    const app = await moduleRef.createNestApplication({ logger: false }).init();
    expect(app.get(SchedulerRegistry)).toBeInstanceOf(SchedulerRegistry);
    const cache = app.get(CACHE_MANAGER);
    await cache.set('k', 'v');
    expect(await cache.get('k')).toBe('v');
    await app.close();
  });

  it('is global: a feature module sees its providers without importing it', async () => {
    @Injectable()
    class Feature {
      constructor(readonly registry: SchedulerRegistry) {}
    }
    @Module({ providers: [Feature] })
    class FeatureModule {}
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot(), FeatureModule],
    }).compile();
    expect(moduleRef.get(Feature).registry).toBeInstanceOf(SchedulerRegistry);
    await moduleRef.close();
  });

  it('forRootAsync takes its options from a factory that injects a config provider', async () => {
    const CONFIG = 'CONFIG';
    @Module({ providers: [{ provide: CONFIG, useValue: { shutdown: 1234 } }], exports: [CONFIG] })
    class ConfigModule {}
    const factory = vi.fn((config: { shutdown: number }) => ({ shutdownTimeout: config.shutdown }));
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRootAsync({ imports: [ConfigModule], inject: [CONFIG], useFactory: factory })],
    }).compile();
    expect(factory).toHaveBeenCalledWith({ shutdown: 1234 });
    await moduleRef.close();
  });

  it('forRootAsync({ useClass }) calls createConcurrencyOptions() of a ConcurrencyOptionsFactory', async () => {
    @Injectable()
    class ConcurrencyConfig implements ConcurrencyOptionsFactory {
      createConcurrencyOptions() {
        return { supervisors: { mail: { maxChildren: 3, shutdownTimeout: 50 } } };
      }
    }
    // Async options are read at boot: a supervisor name is known to the module once it is requested (as
    // @InjectSupervisor('mail') does) before forRootAsync() is evaluated.
    const token = getSupervisorToken('mail');
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRootAsync({ useClass: ConcurrencyConfig })],
    }).compile();
    const mail = moduleRef.get<TaskSupervisor>(token);
    // Work that honours its signal, so close() does not wait out the shutdown timeout.
    const held = (ctx: TaskContext) => new Promise((resolve) => ctx.signal.addEventListener('abort', resolve));
    for (let i = 0; i < 3; i++) mail.startChild(held);
    expect(() => mail.startChild(() => 1)).toThrow(MaxChildrenError);
    await moduleRef.close();
  });

  it('forRootAsync({ useExisting }) calls createConcurrencyOptions() of the existing provider', async () => {
    @Injectable()
    class SharedConfig implements ConcurrencyOptionsFactory {
      async createConcurrencyOptions() {
        return { shutdownTimeout: 50 };
      }
    }
    @Module({ providers: [SharedConfig], exports: [SharedConfig] })
    class SharedConfigModule {}
    const create = vi.spyOn(SharedConfig.prototype, 'createConcurrencyOptions');
    const moduleRef = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRootAsync({ imports: [SharedConfigModule], useExisting: SharedConfig })],
    }).compile();
    expect(create).toHaveBeenCalledTimes(1);
    await moduleRef.close();
  });

  it('validates options coming from forRootAsync too', async () => {
    await expect(
      Test.createTestingModule({
        imports: [ConcurrencyModule.forRootAsync({ useFactory: () => ({ shutdownTimeout: -5 }) })],
      }).compile(),
    ).rejects.toThrow(/"shutdownTimeout".*>= 0/);
  });

  describe('fails boot with an error naming the option and the allowed values', () => {
    it.each<[string, ConcurrencyModuleOptions, RegExp]>([
      [
        'a negative shutdownTimeout',
        { shutdownTimeout: -1 },
        /"shutdownTimeout": expected a number >= 0 and <= 2147483647 \(or Infinity\), got -1/,
      ],
      [
        "a shutdownTimeout beyond setTimeout's range (it would fire after 1 ms)",
        { supervisors: { x: { shutdownTimeout: 2 ** 31 } } },
        /"supervisors\.x\.shutdownTimeout": expected a number >= 0 and <= 2147483647 \(or Infinity\), got 2147483648/,
      ],
      [
        "a job timeout beyond setTimeout's range",
        { jobs: { timeout: 2 ** 31 } },
        /"jobs\.timeout": expected a number > 0 and <= 2147483647 \(or Infinity\), got 2147483648/,
      ],
      [
        "a store timeout beyond setTimeout's range",
        { cache: { storeTimeout: 2 ** 31 } },
        /"cache\.storeTimeout": expected a number > 0 and <= 2147483647, got 2147483648/,
      ],
      [
        'maxChildren: 0',
        { supervisors: { x: { maxChildren: 0 } } },
        /"supervisors\.x\.maxChildren": expected an integer >= 1 \(or Infinity\), got 0/,
      ],
      [
        'an unknown top-level key',
        { shutdownTimout: 10 } as ConcurrencyModuleOptions,
        /Unknown ConcurrencyModule option "shutdownTimout"\. Allowed options: supervisors, fanOut, jobs, cache, shutdownTimeout/,
      ],
      [
        'a string where a number belongs',
        { fanOut: { concurrency: '4' as unknown as number } },
        /"fanOut\.concurrency".*got "4"/,
      ],
      [
        'an unknown nested key',
        { cache: { ttlMs: 5 } as never },
        /Unknown ConcurrencyModule option "cache\.ttlMs"\. Allowed in "cache": ttl, maxEntries, stores, storeTimeout/,
      ],
      [
        'a wrong overlap',
        { jobs: { overlap: 'never' as 'skip' } },
        /"jobs\.overlap": expected 'skip', 'allow', 'buffer-one' or 'cancel-previous', got "never"/,
      ],
      [
        'a store that is not Keyv',
        { cache: { stores: [{}] as never } },
        /"cache\.stores\[0\]": expected a Keyv instance/,
      ],
    ])('%s', async (_, options, message) => {
      const booting = boot(options);
      await expect(booting).rejects.toBeInstanceOf(ConcurrencyOptionsError);
      await expect(booting).rejects.toThrow(message);
    });
  });
});
