import type { INestApplication } from '@nestjs/common';
import { Injectable } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Interval, RedisJobLock } from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootJobs } from './utils/boot.js';

describe.skipIf(!redisAvailable)('job names never collide in Redis keys (real redis-server)', () => {
  let server: RedisServer;
  let client: Redis;
  let app: INestApplication | undefined;

  beforeAll(async () => {
    server = await RedisServer.start();
    client = new Redis(server.url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: true });
    client.on('error', () => {});
    await client.connect();
  });
  afterAll(async () => {
    await app?.close();
    client.disconnect();
    await server.stop();
  });

  it("a job named like another job's history, last-tick or catch-up key still runs", async () => {
    const runs: Record<string, number> = {};
    const names = ['history:x', 'x@running', 'last-tick:y', 'y@running', 'z@2030-01-01T00:00:00.000Z', 'z'];
    const count = (name: string) => void (runs[name] = (runs[name] ?? 0) + 1);
    @Injectable()
    class Jobs {
      @Interval(100, { name: names[0], lock: true }) a() {
        count(names[0]);
      }
      @Interval(100, { name: names[1], lock: true }) b() {
        count(names[1]);
      }
      @Interval(100, { name: names[2], lock: true }) c() {
        count(names[2]);
      }
      @Interval(100, { name: names[3], lock: true, catchUp: { window: 60_000 } }) d() {
        count(names[3]);
      }
      @Interval(100, { name: names[4], lock: true }) e() {
        count(names[4]);
      }
      @Interval(100, { name: names[5], lock: true }) f() {
        count(names[5]);
      }
    }
    app = await bootJobs([Jobs], { jobs: { lock: new RedisJobLock(client) } });
    await vi.waitFor(
      () => {
        for (const name of names) expect(runs[name] ?? 0, name).toBeGreaterThanOrEqual(5);
      },
      { timeout: 15_000 },
    );
  }, 30_000);
});
