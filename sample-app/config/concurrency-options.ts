import { type ConcurrencyModuleOptions, InMemoryJobLock, RedisJobLock } from 'nestjs-concurrency';
import type { RedisConnections } from './redis-connections.js';

/**
 * In memory by default; with `REDIS_URL`, a two-tier cache (memory + Redis), a cluster-wide job lock and durable tasks
 * (newsletter sends stored in Redis survive a restart and run on any instance).
 */
export function concurrencyOptions(redis: RedisConnections | null): ConcurrencyModuleOptions {
  return {
    supervisors: {
      // A send may fail a few times in a row (the simulated mailer): allow 10 restarts in 10 s before giving up.
      emails: { maxChildren: 100, maxRestarts: 10, maxSeconds: 10, shutdownTimeout: 10_000 },
    },
    fanOut: { concurrency: 8 },
    jobs: { lock: redis ? new RedisJobLock(redis.lockClient) : new InMemoryJobLock() },
    // With Redis, a cold or stale key is computed once across the instances (singleFlight 'cluster', the default with
    // a @keyv/redis store, spelled out here): GET /weather/:city calls the slow upstream once for all of them.
    cache: {
      ttl: 10_000,
      maxEntries: 5_000,
      ...(redis ? { stores: [redis.cacheStore], singleFlight: 'cluster' as const, singleFlightWait: 3000 } : {}),
    },
    // A send cut short by a deploy goes back to the queue after 10 s of draining; a crashed instance's send is taken
    // back by another instance within 10 s.
    // Without Redis the newsletter's @TaskHandler is off on purpose (a boot warning), not forgotten (a failed boot).
    durable: redis ? { connection: redis.url, prefix: 'sample-app', stalledTimeout: 10_000 } : false,
  };
}
