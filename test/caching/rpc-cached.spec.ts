import { APP_INTERCEPTOR } from '@nestjs/core';
import { CacheService, ResponseCacheInterceptor } from 'nestjs-concurrency';
import { Gate } from '../fixtures/cache-app.js';
import {
  CachedEventController,
  ItemsRpcController,
  type RpcApp,
  rpcCalls,
  rpcGate,
  rpcState,
  startRpcApp,
  VaryUserRpcController,
} from '../fixtures/rpc-cache-app.js';

describe('@Cached on microservice handlers (TCP transport on loopback)', () => {
  let rpc: RpcApp | undefined;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeEach(() => {
    for (const key of Object.keys(rpcCalls.calls)) delete rpcCalls.calls[key];
    rpcGate.current = new Gate();
    rpcGate.current.open();
    rpcState.version = 1;
    rpcState.failNext = false;
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
  });

  afterEach(async () => {
    vi.useRealTimers();
    await rpc?.close();
    rpc = undefined;
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
  });

  it('runs a @MessagePattern handler once for two equal sends, and again for other data', async () => {
    rpc = await startRpcApp();
    const first = await rpc.send('items.get', { id: 1 });
    const second = await rpc.send('items.get', { id: 1 });
    expect(second).toEqual(first);
    expect(first).toEqual({ id: 1, filter: null, run: 1 });
    expect(rpcCalls.count('items.get')).toBe(1);
    const other = await rpc.send('items.get', { id: 2 });
    expect(other).toEqual({ id: 2, filter: null, run: 2 });
    expect(rpcCalls.count('items.get')).toBe(2);
  });

  it('keys on the content of the data: the same object in another key order is the same key, a string is not a number', async () => {
    rpc = await startRpcApp();
    await rpc.send('items.get', { id: 1, filter: { a: 1, b: [1, 2] } });
    await rpc.send('items.get', { filter: { b: [1, 2], a: 1 }, id: 1 });
    expect(rpcCalls.count('items.get')).toBe(1);
    await rpc.send('items.get', { id: '1', filter: { a: 1, b: [1, 2] } });
    await rpc.send('items.get', { id: 1, filter: { a: 1, b: [2, 1] } });
    expect(rpcCalls.count('items.get')).toBe(3);
  });

  it('keys object patterns too (the pattern and the data)', async () => {
    rpc = await startRpcApp();
    expect(await rpc.send({ v: 1, cmd: 'items.sum' }, [1, 2, 3])).toBe(6);
    expect(await rpc.send({ cmd: 'items.sum', v: 1 }, [1, 2, 3])).toBe(6);
    expect(rpcCalls.count('items.sum')).toBe(1);
    expect(await rpc.send({ cmd: 'items.sum', v: 1 }, [1, 2, 4])).toBe(7);
    expect(rpcCalls.count('items.sum')).toBe(2);
  });

  it('runs the handler once for 50 concurrent equal sends (single flight), and every sender gets its reply', async () => {
    rpcGate.current = new Gate();
    rpc = await startRpcApp();
    const app = rpc;
    const replies = Promise.all(Array.from({ length: 50 }, () => app.send('items.get', { id: 7 })));
    await vi.waitFor(() => expect(rpcGate.current.waiting).toBe(1), { timeout: 10_000, interval: 10 });
    rpcGate.current.open();
    const all = await replies;
    expect(new Set(all.map((r) => JSON.stringify(r)))).toEqual(
      new Set([JSON.stringify({ id: 7, filter: null, run: 1 })]),
    );
    expect(rpcCalls.count('items.get')).toBe(1);
    const stats = app.app.get(CacheService).stats();
    expect(stats.misses).toBe(1);
    expect(stats.coalesced + stats.hits).toBe(49);
    const own = stats.methods['ItemsRpcController.get'];
    expect([own.misses, own.coalesced + own.hits]).toEqual([1, 49]);
  });

  it('counts hits and misses in stats() like routes, with each handler its share from boot', async () => {
    rpc = await startRpcApp();
    const cache = rpc.app.get(CacheService);
    expect(cache.stats().methods['ItemsRpcController.get']).toEqual({
      hits: 0,
      misses: 0,
      stale: 0,
      coalesced: 0,
      clusterFollowers: 0,
    });
    await rpc.send('items.get', { id: 1 });
    await rpc.send('items.get', { id: 1 });
    await rpc.send('items.get', { id: 1 });
    await rpc.send({ cmd: 'items.sum', v: 1 }, [1, 2]);
    await rpc.send('items.uncached', {});
    const stats = cache.stats();
    expect(stats).toMatchObject({ misses: 2, hits: 2 });
    expect(stats.methods['ItemsRpcController.get']).toMatchObject({ misses: 1, hits: 2, coalesced: 0 });
    expect(stats.methods['ItemsRpcController.sum']).toMatchObject({ misses: 1, hits: 0 });
    // A handler without @Cached is not listed.
    expect(stats.methods['ItemsRpcController.uncached']).toBeUndefined();
  });

  it('computes again once the ttl has passed', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    rpc = await startRpcApp();
    await rpc.send('items.get', { id: 1 });
    vi.setSystemTime(Date.now() + 59_000);
    await rpc.send('items.get', { id: 1 });
    expect(rpcCalls.count('items.get')).toBe(1);
    vi.setSystemTime(Date.now() + 2_000);
    await rpc.send('items.get', { id: 1 });
    expect(rpcCalls.count('items.get')).toBe(2);
  });

  it('serves the stale reply at once while one background refresh runs (staleWhileRevalidate)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    rpc = await startRpcApp();
    expect(await rpc.send('items.version', {})).toEqual({ version: 1, run: 1 });
    rpcState.version = 2;
    vi.setSystemTime(Date.now() + 5_000); // past the ttl, inside the stale window
    expect(await rpc.send('items.version', {})).toEqual({ version: 1, run: 1 });
    await vi.waitFor(() => expect(rpcCalls.count('items.version')).toBe(2), { timeout: 5000, interval: 10 });
    await vi.waitFor(async () => expect(await rpc?.send('items.version', {})).toEqual({ version: 2, run: 2 }), {
      timeout: 5000,
      interval: 20,
    });
    expect(rpc.app.get(CacheService).stats().stale).toBeGreaterThanOrEqual(1);
  });

  it('keeps serving the stale reply when the refresh fails (stale-if-error)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    rpc = await startRpcApp();
    await rpc.send('items.version', {});
    rpcState.failNext = true;
    vi.setSystemTime(Date.now() + 5_000);
    expect(await rpc.send('items.version', {})).toEqual({ version: 1, run: 1 });
    await vi.waitFor(() => expect(rpc?.app.get(CacheService).stats().refreshErrors).toBe(1), {
      timeout: 5000,
      interval: 10,
    });
    expect(await rpc.send('items.version', {})).toEqual({ version: 1, run: 1 });
  });

  it('never caches an error: it reaches the sender, and the next send runs the handler again', async () => {
    rpc = await startRpcApp();
    await expect(rpc.send('items.fails', { id: 3 })).rejects.toMatchObject({ message: 'item 3 not found (run 1)' });
    await expect(rpc.send('items.fails', { id: 3 })).rejects.toMatchObject({ message: 'item 3 not found (run 2)' });
    expect(rpcCalls.count('items.fails')).toBe(2);
  });

  it('passes a handler that replies with a stream of values through, uncached', async () => {
    rpc = await startRpcApp();
    expect(await rpc.sendAll('items.stream', {})).toEqual([1, 2, 3]);
    expect(await rpc.sendAll('items.stream', {})).toEqual([1, 2, 3]);
    expect(rpcCalls.count('items.stream')).toBe(2);
  });

  it('caches an Observable that emits one value like any reply', async () => {
    rpc = await startRpcApp();
    expect(await rpc.send('items.one$', {})).toEqual({ n: 1 });
    expect(await rpc.send('items.one$', {})).toEqual({ n: 1 });
    expect(rpcCalls.count('items.one$')).toBe(1);
  });

  it('evicts by tag after a @CacheEvict message handler and after a @CacheEvict event handler', async () => {
    rpc = await startRpcApp();
    await rpc.send('items.get', { id: 1 });
    await rpc.send('items.evict', {});
    await rpc.send('items.get', { id: 1 });
    expect(rpcCalls.count('items.get')).toBe(2);
    await lastValue(rpc.client.emit('items.changed', {}));
    await vi.waitFor(() => expect(rpcCalls.count('items.changed')).toBe(1), { timeout: 5000, interval: 10 });
    await vi.waitFor(
      async () => {
        await rpc?.send('items.get', { id: 1 });
        expect(rpcCalls.count('items.get')).toBe(3);
      },
      { timeout: 5000, interval: 20 },
    );
  });

  it('as a global interceptor, leaves message handlers without @Cached alone', async () => {
    rpc = await startRpcApp(
      {},
      [ItemsRpcController],
      [{ provide: APP_INTERCEPTOR, useClass: ResponseCacheInterceptor }],
    );
    expect(await rpc.send('items.uncached', {})).toEqual({ run: 1 });
    expect(await rpc.send('items.uncached', {})).toEqual({ run: 2 });
    // and a @Cached handler is cached once, not twice
    await rpc.send('items.get', { id: 1 });
    await rpc.send('items.get', { id: 1 });
    expect(rpcCalls.count('items.get')).toBe(1);
    expect(rpc.app.get(CacheService).stats()).toMatchObject({ misses: 1, hits: 1 });
  });

  it('refuses @Cached on an @EventPattern handler at boot, naming the handler', async () => {
    await expect(startRpcApp({}, [CachedEventController])).rejects.toThrow(
      /@Cached on CachedEventController\.created, an @EventPattern handler/,
    );
  });

  it("refuses vary: ['user'] on a message handler at boot (a message has no user)", async () => {
    await expect(startRpcApp({}, [VaryUserRpcController])).rejects.toThrow(
      /@Cached on VaryUserRpcController\.me, a @MessagePattern handler, has vary 'user'/,
    );
  });
});

function lastValue(source: import('rxjs').Observable<unknown>): Promise<unknown> {
  return new Promise((resolve, reject) => source.subscribe({ complete: () => resolve(undefined), error: reject }));
}
