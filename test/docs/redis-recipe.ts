import { Global, Inject, Injectable, Logger, Module, type OnApplicationShutdown } from '@nestjs/common';
import KeyvRedis from '@keyv/redis';
import { Keyv } from 'keyv';
import { Redis } from 'ioredis';
import { ConcurrencyModule, RedisJobLock } from 'nestjs-concurrency';

export const REDIS = Symbol('REDIS');
export const CACHE_STORE = Symbol('CACHE_STORE');
const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

@Injectable()
class RedisShutdown implements OnApplicationShutdown {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(CACHE_STORE) private readonly store: Keyv,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    // Runs after ConcurrencyModule's drain (see the imports below): the last job runs release their leases first.
    await this.redis.quit().catch(() => this.redis.disconnect());
    await this.store.disconnect().catch(() => undefined); // the cache has closed it already; harmless
  }
}

@Global()
@Module({
  providers: [
    {
      provide: REDIS,
      useFactory: () => {
        // Fail fast while Redis is down: every lock call has its own timeout, and a tick is skipped, not queued.
        const client = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false });
        client.on('error', (error: Error) => new Logger('Redis').warn(error.message));
        return client;
      },
    },
    {
      provide: CACHE_STORE,
      useFactory: () => {
        const store = new Keyv({ store: new KeyvRedis(url), namespace: 'orders-api' });
        store.on('error', () => undefined); // counted and logged by the cache, which keeps answering from L1
        return store;
      },
    },
    RedisShutdown,
  ],
  exports: [REDIS, CACHE_STORE],
})
export class RedisModule {}

@Module({
  imports: [
    // First, before ConcurrencyModule: Nest runs the shutdown hooks of global modules in the reverse order of their
    // imports, so RedisModule's hook closes the client only after ConcurrencyModule has drained its tasks and jobs.
    RedisModule,
    ConcurrencyModule.forRootAsync({
      inject: [REDIS, CACHE_STORE],
      useFactory: (redis: Redis, store: Keyv) => ({
        jobs: { lock: new RedisJobLock(redis) },
        cache: { stores: [store] },
        durable: { connection: url }, // BullMQ opens and closes its own connections
      }),
    }),
  ],
})
export class AppModule {}
