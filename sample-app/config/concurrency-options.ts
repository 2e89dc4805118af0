import { type ConcurrencyModuleOptions, InMemoryJobLock, RedisJobLock } from 'nestjs-concurrency';
import type { RedisConnections } from './redis-connections.js';

/** In memory by default; with `REDIS_URL`, a two-tier cache (memory + Redis) and a cluster-wide job lock. */
export function concurrencyOptions(redis: RedisConnections | null): ConcurrencyModuleOptions {
  return {
    supervisors: {
      // A send may fail a few times in a row (the simulated mailer): allow 10 restarts in 10 s before giving up.
      emails: { maxChildren: 100, maxRestarts: 10, maxSeconds: 10, shutdownTimeout: 10_000 },
    },
    fanOut: { concurrency: 8 },
    jobs: { lock: redis ? new RedisJobLock(redis.lockClient) : new InMemoryJobLock() },
    cache: { ttl: 10_000, maxEntries: 5_000, ...(redis ? { stores: [redis.cacheStore] } : {}) },
  };
}
