import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { JobRegistry } from 'nestjs-concurrency';
import { WeatherUpstreamService } from '../../sample-app/weather/weather-upstream.service.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';
import { bootSample, testConfig } from '../fixtures/sample-app.js';

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

  it('runs jobs with the Redis job lock configured', async () => {
    const { body } = await request(a.getHttpServer()).post('/jobs/nightly-report/run').expect(200);
    expect(body.failures).toBe(0);
    expect(a.get(JobRegistry).get('nightly-report').runs).toBe(1);
  });

  it('keeps answering 200 when Redis goes away', async () => {
    await redis.stop();
    const res = await request(a.getHttpServer()).get('/weather/vienna').expect(200);
    expect(res.body.city).toBe('vienna');
    await request(b.getHttpServer()).get('/health').expect(200);
  });
});
