import { Controller, Get, Injectable } from '@nestjs/common';
import { Cached, CacheService } from 'nestjs-concurrency';
import request from 'supertest';
import { bootKit, deferred } from './helpers.js';

@Injectable()
class Upstream {
  calls = 0;
  gate: Promise<void> | undefined;
  async fetch(): Promise<{ calls: number }> {
    const calls = ++this.calls;
    if (this.gate) await this.gate;
    return { calls };
  }
}

@Controller()
class WeatherController {
  constructor(private readonly upstream: Upstream) {}

  @Get('weather')
  @Cached({ ttl: 60_000 })
  weather(): Promise<{ calls: number }> {
    return this.upstream.fetch();
  }

  @Get('swr')
  @Cached({ ttl: 100, staleWhileRevalidate: 60_000 })
  swr(): Promise<{ calls: number }> {
    return this.upstream.fetch();
  }
}

const boot = () => bootKit([Upstream], {}, undefined, undefined, [WeatherController]);

describe('ConcurrencyTester.cache', () => {
  afterEach(() => vi.useRealTimers());

  it('clear() empties the cache: a cached route computes again, CacheService entries are gone', async () => {
    const { app, tester } = await boot();
    const server = app.getHttpServer();
    await request(server).get('/weather').expect('X-Cache', 'MISS');
    await request(server).get('/weather').expect('X-Cache', 'HIT');
    await app.get(CacheService).set('greeting', 'hello');
    await tester.cache.clear();
    const res = await request(server).get('/weather').expect('X-Cache', 'MISS');
    expect(res.body).toEqual({ calls: 2 });
    expect(await app.get(CacheService).get('greeting')).toBeUndefined();
    await app.close();
  });
});

describe('ConcurrencyTester.idle() and the cache', () => {
  afterEach(() => vi.useRealTimers());

  it('waits for a stale-while-revalidate refresh that runs after the response has left', async () => {
    const { app, tester } = await boot();
    const server = app.getHttpServer();
    // A clock that moves only when told: Date only, timers stay real.
    vi.useFakeTimers({ toFake: ['Date'] });
    const t0 = Date.now();
    await request(server).get('/swr').expect('X-Cache', 'MISS');
    vi.setSystemTime(t0 + 200); // past the 100 ms TTL, within staleWhileRevalidate
    const upstream = app.get(Upstream);
    const gate = deferred();
    upstream.gate = gate.promise;
    await request(server).get('/swr').expect('X-Cache', 'STALE');
    await expect(tester.idle(50)).rejects.toThrow(/cache refresh of/);
    gate.resolve();
    await tester.idle();
    expect(upstream.calls).toBe(2);
    const fresh = await request(server).get('/swr').expect('X-Cache', 'HIT');
    expect(fresh.body).toEqual({ calls: 2 });
    await app.close();
  });
});
