import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import { CacheService } from 'nestjs-concurrency';
import request from 'supertest';
import { WeatherUpstreamService } from '../../sample-app/weather/weather-upstream.service.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootSample, testConfig } from '../fixtures/sample-app.js';

const CONCURRENT = 50;

describe.skipIf(!redisAvailable)('sample app: three instances with REDIS_URL (real redis-server)', () => {
  let redis: RedisServer;
  let apps: INestApplication[] = [];

  beforeAll(async () => {
    redis = await RedisServer.start();
    const config = () => testConfig({ redisUrl: redis.url, upstreamDelayMs: 200 });
    apps = [
      await bootSample('express', config()),
      await bootSample('fastify', config()),
      await bootSample('express', config()),
    ];
  });

  afterAll(async () => {
    for (const app of apps) await app?.close();
    await redis?.stop();
  });

  it('calls the weather upstream once for concurrent cold GET /weather/:city on every instance', async () => {
    const spies = apps.map((app) => vi.spyOn(app.get(WeatherUpstreamService), 'fetch'));
    const oslo = () => spies.reduce((n, spy) => n + spy.mock.calls.filter(([city]) => city === 'oslo').length, 0);
    // each instance listens to the other instances' lease releases before the burst (its subscriber connects at boot)
    await vi.waitFor(
      async () => {
        expect(await releaseListeners(redis.url)).toBe(apps.length);
      },
      { timeout: 10_000, interval: 50 },
    );
    const responses = await Promise.all(
      apps.flatMap((app) =>
        Array.from({ length: CONCURRENT }, () => request(app.getHttpServer()).get('/weather/oslo')),
      ),
    );
    expect(responses.every((res) => res.status === 200)).toBe(true);
    expect(new Set(responses.map((res) => JSON.stringify(res.body))).size).toBe(1);
    expect(oslo()).toBe(1);
    const stats = apps.map((app) => app.get(CacheService).stats());
    expect(stats.map((s) => s.clusterFallbacks)).toEqual([0, 0, 0]);
    expect(stats.some((s) => s.clusterFollowers > 0)).toBe(true);
  });
});

/** How many clients listen to the sample app's lease releases (its Keyv namespace is 'sample-app'). */
async function releaseListeners(url: string): Promise<number> {
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const reply = (await client.pubsub('NUMSUB', 'sample-app:nestjs-concurrency:cache:flight')) as [string, number];
    return Number(reply[1]);
  } finally {
    client.disconnect();
  }
}
