import { readFileSync } from 'node:fs';
import { Inject, Injectable, type LoggerService, Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import type { Keyv } from 'keyv';
import { CacheService, ConcurrencyModule, Cron, type JobContext, RedisJobLock } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

/**
 * The Redis client recipe of docs/redis.md, run as a user runs it: the page's code (./redis-recipe.ts, which the
 * page shows verbatim) and a cron job that is still running when the app closes. The end of that run uses the
 * client (its overlap lease is released, it writes the cache): the recipe must close the client after the drain.
 */
describe.runIf(redisAvailable)('docs/redis.md: the client recipe', () => {
  let redis: RedisServer;
  let recipe: typeof import('./redis-recipe.js');

  beforeAll(async () => {
    redis = await RedisServer.start();
    process.env.REDIS_URL = redis.url; // read once, when the recipe's module loads
    recipe = await import('./redis-recipe.js');
  });
  afterAll(async () => {
    await redis?.stop();
  });

  /** Boots `appModule` with a cron job, closes the app while a run is in progress, returns the keys left in Redis. */
  async function closeDuringARun(appModule: Type): Promise<{ keys: string[]; wrote: boolean; problems: string[] }> {
    const check = new Redis(redis.url);
    await check.flushall();
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    let wrote = false;

    @Injectable()
    class Reports {
      constructor(private readonly cache: CacheService) {}

      @Cron('* * * * * *', { name: 'report', lock: true })
      async report(ctx: JobContext): Promise<void> {
        if (ctx.signal.aborted) return;
        started();
        await gate;
        await this.cache.set('report', 'done', 60_000);
        wrote = true;
      }
    }

    @Module({ imports: [appModule], providers: [Reports] })
    class TestApp {}

    const problems: string[] = [];
    const logger: LoggerService = {
      log: () => undefined,
      warn: (message: unknown) => void problems.push(String(message)),
      error: (message: unknown) => void problems.push(String(message)),
    };
    const app = await NestFactory.createApplicationContext(TestApp, { logger, abortOnError: false });
    await app.init();
    const client = app.get<Redis>(recipe.REDIS);
    const ended = new Promise<void>((resolve) => client.once('end', resolve));
    await running;

    // The run ends as soon as the recipe's client has closed (the wrong order shows at once), or after a bound well
    // inside the drain's shutdownTimeout (5 s) while the client stays open during the drain (the right order).
    void ended.then(finish);
    const bound = setTimeout(finish, 3000);
    try {
      await app.close();
      await ended; // the recipe closes the client in the end, whatever the order
      return { keys: await check.keys('*'), wrote, problems };
    } finally {
      clearTimeout(bound);
      check.disconnect();
    }
  }

  it('the page shows ./redis-recipe.ts verbatim', () => {
    const page = readFileSync(new URL('../../docs/redis.md', import.meta.url), 'utf8');
    const code = readFileSync(new URL('./redis-recipe.ts', import.meta.url), 'utf8');
    expect(page).toContain('```ts\n' + code + '```\n');
  });

  it('a run in progress at close releases its lease and writes the cache before the client closes', async () => {
    const { keys, wrote, problems } = await closeDuringARun(recipe.AppModule);
    expect(wrote).toBe(true);
    expect(keys.filter((key) => key.endsWith('@running'))).toEqual([]); // the overlap lease was released
    expect(keys.filter((key) => key.startsWith('orders-api:') && key.endsWith(':report'))).toHaveLength(1);
    expect(problems).toEqual([]);
  }, 30_000);

  it('why the page imports RedisModule first: imported after ConcurrencyModule, the client closes before the drain', async () => {
    @Module({
      imports: [
        ConcurrencyModule.forRootAsync({
          inject: [recipe.REDIS, recipe.CACHE_STORE],
          useFactory: (client: Redis, store: Keyv) => ({
            jobs: { lock: new RedisJobLock(client) },
            cache: { stores: [store] },
          }),
        }),
        recipe.RedisModule,
      ],
    })
    class WrongOrder {}

    const { keys } = await closeDuringARun(WrongOrder);
    // the run's lease could not be released: every instance skips the job until the lease's TTL expires
    expect(keys.filter((key) => key.endsWith('@running'))).toHaveLength(1);
  }, 30_000);

  it('a module that is not global, imported through forRootAsync({ imports }), closes the client before the drain too', async () => {
    @Injectable()
    class RedisShutdown {
      constructor(@Inject(recipe.REDIS) private readonly client: Redis) {}
      async onApplicationShutdown(): Promise<void> {
        await this.client.quit();
      }
    }
    @Module({
      providers: [
        {
          provide: recipe.REDIS,
          useFactory: () => new Redis(redis.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false }),
        },
        RedisShutdown,
      ],
      exports: [recipe.REDIS],
    })
    class NotGlobal {}
    @Module({
      imports: [
        ConcurrencyModule.forRootAsync({
          imports: [NotGlobal],
          inject: [recipe.REDIS],
          useFactory: (client: Redis) => ({ jobs: { lock: new RedisJobLock(client) } }),
        }),
      ],
    })
    class ThroughForRootAsync {}

    const { keys } = await closeDuringARun(ThroughForRootAsync);
    expect(keys.filter((key) => key.endsWith('@running'))).toHaveLength(1);
  }, 30_000);
});
