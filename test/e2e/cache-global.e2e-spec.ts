import { type INestApplication, Module } from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { CacheService, ConcurrencyModule, ResponseCacheInterceptor } from 'nestjs-concurrency';
import http from 'node:http';
import request from 'supertest';
import type { CallCounter } from '../fixtures/cache-app.js';
import { createGlobalCacheAppModule, type StreamProbe } from '../fixtures/cache-global-app.js';
import { RecordingLogger } from '../fixtures/cache-logger.js';
import { bootstrapApp, HTTP_ADAPTERS } from './utils/bootstrap-app.js';

/**
 * A Server-Sent Events client on a connection of its own (no keep-alive): `next()` resolves with the data of the next
 * event, null at the end; `close()` goes away as a browser tab does.
 */
function openSse(url: string) {
  let buffer = '';
  let ended = false;
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  const req = http.get(url, { agent: false, headers: { accept: 'text/event-stream' } }, (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      wake?.();
    });
    res.on('end', () => {
      ended = true;
      wake?.();
    });
  });
  req.on('error', (error) => {
    failure ??= error;
    wake?.();
  });
  return {
    async next(timeoutMs = 3000): Promise<string | null> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const end = buffer.indexOf('\n\n');
        if (end >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          if (/^event: error/m.test(event)) throw new Error(`SSE error event: ${event}`);
          const data = /^data: (.*)$/m.exec(event);
          if (data) return data[1];
          continue;
        }
        if (failure) throw failure;
        if (ended) return null;
        if (Date.now() >= deadline) throw new Error(`no SSE event within ${timeoutMs} ms`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, deadline - Date.now());
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    },
    close() {
      req.destroy();
    },
  };
}

describe.each(HTTP_ADAPTERS)('ResponseCacheInterceptor as APP_INTERCEPTOR (%s)', (adapter) => {
  let app: INestApplication;
  let counter: CallCounter;
  let probe: StreamProbe;
  let logger: RecordingLogger;
  let url: string;

  beforeEach(async () => {
    const fixture = createGlobalCacheAppModule();
    counter = fixture.counter;
    probe = fixture.probe;
    logger = new RecordingLogger();
    app = await bootstrapApp(adapter, fixture.module, undefined, (nest) => nest.useLogger(logger));
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
  });

  afterEach(async () => {
    probe.gate.open();
    await app.close();
  });

  it('caches every GET route with the default TTL', async () => {
    await request(url).get('/plain').expect('X-Cache', 'MISS');
    await request(url).get('/plain').expect('X-Cache', 'HIT');
    expect(counter.count('plain')).toBe(1);
  });

  it('honours @CacheKey and @CacheTTL (ms) of @nestjs/cache-manager', async () => {
    // the clock moves only when told: a loaded machine cannot make the 100 ms TTL pass between two requests
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const t0 = Date.now();
      await request(url).get('/keyed').expect('X-Cache', 'MISS');
      expect(await app.get(CacheService).get('custom-key')).toEqual({ calls: 1 });
      vi.setSystemTime(t0 + 90);
      await request(url).get('/keyed').expect('X-Cache', 'HIT');
      vi.setSystemTime(t0 + 110);
      await request(url).get('/keyed').expect('X-Cache', 'MISS');
      expect(counter.count('keyed')).toBe(2);
    } finally {
      vi.useRealTimers();
    }
  });

  it('handles a @Cached route once although the interceptor is applied twice', async () => {
    await request(url).get('/decorated').expect('X-Cache', 'MISS');
    await request(url).get('/decorated').expect('X-Cache', 'HIT');
    expect(counter.count('decorated')).toBe(1);
    expect(app.get(CacheService).stats()).toMatchObject({ misses: 1, hits: 1, coalesced: 0 });
  });

  it('streams an endless @Sse route, and ends its subscription when the client goes away', async () => {
    const sse = openSse(`${url}/sse/endless`);
    expect(JSON.parse((await sse.next())!)).toEqual({ i: 0 });
    expect(JSON.parse((await sse.next())!)).toEqual({ i: 1 });
    sse.close();
    await vi.waitFor(() => expect(probe.endlessTeardowns).toBe(1), { timeout: 5000, interval: 20 });
    // a second client runs the handler again: an SSE route is never cached
    const again = openSse(`${url}/sse/endless`);
    expect(JSON.parse((await again.next())!)).toEqual({ i: 0 });
    again.close();
    await vi.waitFor(() => expect(probe.endlessTeardowns).toBe(2), { timeout: 5000, interval: 20 });
    expect(counter.count('sse/endless')).toBe(2);
  });

  it('sends a finite @Sse route event by event', async () => {
    const sse = openSse(`${url}/sse/finite`);
    // the second event is held back until the first one has arrived
    expect(JSON.parse((await sse.next())!)).toEqual({ n: 1 });
    probe.gate.open();
    expect(JSON.parse((await sse.next())!)).toEqual({ n: 2 });
    expect(await sse.next()).toBeNull();
  });

  it('streams FanOut.stream$() over SSE', async () => {
    const sse = openSse(`${url}/sse/fan-out`);
    const events: string[] = [];
    for (let data = await sse.next(); data !== null; data = await sse.next()) events.push(data);
    expect(events).toEqual(['10', '20', '30']);
  });

  it('never caches a GET whose Observable emits more than once (Nest sends the last value)', async () => {
    const first = await request(url).get('/many').expect(200).expect('X-Cache', 'BYPASS');
    expect(first.text).toBe('103');
    const second = await request(url).get('/many').expect(200).expect('X-Cache', 'BYPASS');
    expect(second.text).toBe('203');
    expect(counter.count('many')).toBe(2);
  });

  it('ends the subscription of a GET whose Observable never completes when the client goes away', async () => {
    const req = http.get(`${url}/many/endless`, { agent: false });
    req.on('error', () => undefined);
    // it has emitted more than once (a stream, not a value to store) before the client goes away
    await vi.waitFor(() => expect(probe.endlessGetEmitted).toBeGreaterThan(2), { timeout: 10_000, interval: 10 });
    req.destroy();
    await vi.waitFor(() => expect(probe.endlessGetTeardowns).toBe(1), { timeout: 5000, interval: 20 });
  });

  it('never stores an async iterable a handler returns', async () => {
    const first = await request(url).get('/iterable').expect(200).expect('X-Cache', 'BYPASS');
    const second = await request(url).get('/iterable').expect(200).expect('X-Cache', 'BYPASS');
    expect(counter.count('iterable')).toBe(2);
    expect(second.text).not.toBe(first.text);
  });

  it('leaves a @Res() route to its handler: not cached, X-Cache set before it answers, nothing logged', async () => {
    const first = await request(url).get('/res/own').expect(200).expect('X-Cache', 'BYPASS');
    expect(first.body).toEqual({ calls: 1 });
    const second = await request(url).get('/res/own').expect(200).expect('X-Cache', 'BYPASS');
    expect(second.body).toEqual({ calls: 2 });
    expect(logger.problems()).toEqual([]);
  });

  it('never stores an error status set through @Res({ passthrough: true }) or @HttpCode', async () => {
    for (const path of ['/res/unavailable', '/code/unavailable']) {
      const first = await request(url).get(path).expect(503).expect('X-Cache', 'BYPASS');
      expect(first.body).toEqual({ down: true, calls: 1 });
      const second = await request(url).get(path).expect(503).expect('X-Cache', 'BYPASS');
      expect(second.body).toEqual({ down: true, calls: 2 });
    }
  });

  it('stores 2xx responses but not a 206 partial one', async () => {
    await request(url).get('/code/partial').expect(206).expect('X-Cache', 'BYPASS');
    await request(url).get('/code/partial').expect(206).expect('X-Cache', 'BYPASS');
    expect(counter.count('code/partial')).toBe(2);
    await request(url).get('/code/accepted').expect(202).expect('X-Cache', 'MISS');
    await request(url).get('/code/accepted').expect(202).expect('X-Cache', 'HIT');
    expect(counter.count('code/accepted')).toBe(1);
  });
});

describe.each(HTTP_ADAPTERS)('ResponseCacheInterceptor as APP_INTERCEPTOR with the dashboard (%s)', (adapter) => {
  let app: INestApplication;
  let url: string;

  beforeEach(async () => {
    @Module({
      imports: [ConcurrencyModule.forRoot({ dashboard: { guard: false } })],
      providers: [{ provide: APP_INTERCEPTOR, useClass: ResponseCacheInterceptor }],
    })
    class DashboardAppModule {}
    app = await bootstrapApp(adapter, DashboardAppModule);
    await app.listen(0, '127.0.0.1');
    url = await app.getUrl();
  });

  afterEach(async () => {
    await app.close();
  });

  it.each(['/_concurrency', '/_concurrency/snapshot'])(
    'never serves the dashboard route %s from the cache (Cache-Control: no-store)',
    async (path) => {
      for (let i = 0; i < 3; i++) {
        const res = await request(url).get(path).expect(200);
        expect(res.headers['cache-control']).toBe('no-store');
        expect(res.headers['x-cache']).not.toBe('HIT');
      }
      expect(app.get(CacheService).stats().hits).toBe(0);
    },
  );
});
