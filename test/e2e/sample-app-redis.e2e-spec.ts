import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { NightlyReportJob } from '../../sample-app/jobs/nightly-report.job.js';
import { WeatherUpstreamService } from '../../sample-app/weather/weather-upstream.service.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootSample, testConfig } from '../fixtures/sample-app.js';

// A per-second nightly report for this file only, read when the sample's job class is defined (hoisted above imports).
vi.hoisted(() => {
  process.env.NIGHTLY_REPORT_CRON = '* * * * * *';
});

describe.skipIf(!redisAvailable)('sample app with REDIS_URL (real redis-server)', () => {
  let redis: RedisServer;
  let a: INestApplication;
  let b: INestApplication;

  beforeAll(async () => {
    redis = await RedisServer.start();
    a = await bootSample('express', testConfig({ redisUrl: redis.url }));
    b = await bootSample('fastify', testConfig({ redisUrl: redis.url }));
  });

  afterAll(async () => {
    await a?.close();
    await b?.close();
    await redis?.stop();
  });

  it('shares cached responses between instances through the Redis L2', async () => {
    const first = await request(a.getHttpServer()).get('/weather/berlin').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    const fetch = vi.spyOn(b.get(WeatherUpstreamService), 'fetch');
    const second = await request(b.getHttpServer()).get('/weather/berlin').expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toEqual(first.body);
    expect(fetch).not.toHaveBeenCalled();
  });

  it('sees an eviction made on the other instance', async () => {
    await request(a.getHttpServer()).get('/weather/madrid').expect(200);
    expect((await request(b.getHttpServer()).get('/weather/madrid')).headers['x-cache']).toBe('HIT');
    await request(a.getHttpServer()).put('/weather/madrid').send({ temperatureC: 30 }).expect(200);
    b.get(WeatherUpstreamService).correct('madrid', 30);
    await vi.waitFor(
      async () => expect((await request(b.getHttpServer()).get('/weather/madrid')).body.temperatureC).toBe(30),
      { timeout: 5000, interval: 50 },
    );
  });

  it('writes each nightly-report tick on one instance only, through the Redis job lock', async () => {
    const reports = () => [a, b].flatMap((app) => app.get(NightlyReportJob).written);
    await vi.waitFor(() => expect(reports().length).toBeGreaterThanOrEqual(3), { timeout: 10_000, interval: 100 });
    const all = reports();
    const ticks = all.map((r) => r.at);
    expect(new Set(ticks).size).toBe(ticks.length);
    const byTick = [...all].sort((x, y) => x.at.localeCompare(y.at));
    const tokens = byTick.map((r) => r.fencingToken);
    expect(tokens.every((t) => typeof t === 'number')).toBe(true);
    expect([...tokens].sort((x, y) => x! - y!)).toEqual(tokens);
  });

  it('keeps answering 200 when Redis goes away, while GET /health says 503 naming the Redis parts', async () => {
    await request(b.getHttpServer()).get('/health').expect(200);
    await redis.stop();
    const res = await request(a.getHttpServer()).get('/weather/vienna').expect(200);
    expect(res.body.city).toBe('vienna');
    const health = await request(b.getHttpServer()).get('/health').expect(503);
    expect(health.body.error.concurrency.failed).toEqual(
      expect.arrayContaining(['jobs.lock', 'cache.stores[0]', 'durable']),
    );
  });
});
