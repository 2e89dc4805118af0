import KeyvRedis from '@keyv/redis';
import { Logger, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Keyv } from 'keyv';

/**
 * The Redis clients of the sample app when `REDIS_URL` is set: ioredis for the job lock, @keyv/redis for the cache L2
 * (durable tasks open their own BullMQ connections to `url`).
 * Both fail fast while Redis is down (the module's timeouts keep requests and ticks going), and both are closed when
 * the app shuts down.
 */
export class RedisConnections implements OnApplicationShutdown {
  private readonly logger = new Logger('Redis');
  readonly lockClient: Redis;
  readonly cacheStore: Keyv;

  constructor(readonly url: string) {
    this.lockClient = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    this.lockClient.on('error', (error: Error) => this.logger.warn(`job lock client: ${error.message}`));
    const adapter = new KeyvRedis(
      {
        url,
        disableOfflineQueue: true,
        socket: { connectTimeout: 1000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** retries, 2000) },
      },
      { throwOnConnectError: false, connectionTimeout: 1000 },
    );
    this.cacheStore = new Keyv({ store: adapter, namespace: 'sample-app' });
    this.cacheStore.on('error', () => undefined); // counted and logged by the cache (fail-open)
  }

  async onApplicationShutdown(): Promise<void> {
    this.lockClient.disconnect();
    await this.cacheStore.disconnect().catch(() => undefined);
  }
}
