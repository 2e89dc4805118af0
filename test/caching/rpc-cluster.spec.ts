import { CacheService } from 'nestjs-concurrency';
import { Gate } from '../fixtures/cache-app.js';
import { redisStore } from '../fixtures/cache-redis.js';
import { CREATED_AT, type GqlApp, gqlCalls, gqlGate, startGqlApp } from '../fixtures/graphql-cache-app.js';
import { type RpcApp, rpcCalls, rpcGate, startRpcApp } from '../fixtures/rpc-cache-app.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const INSTANCES = 3;

describe.skipIf(!redisAvailable)('microservice and GraphQL caching on a real Redis L2', () => {
  let redis: RedisServer;
  const rpcApps: RpcApp[] = [];
  const gqlApps: GqlApp[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeEach(async () => {
    for (const key of Object.keys(rpcCalls.calls)) delete rpcCalls.calls[key];
    for (const key of Object.keys(gqlCalls.calls)) delete gqlCalls.calls[key];
    rpcGate.current = new Gate();
    rpcGate.current.open();
    gqlGate.current = new Gate();
    gqlGate.current.open();
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
    redis = await RedisServer.start();
  });

  afterEach(async () => {
    for (const app of rpcApps.splice(0)) await app.close();
    for (const app of gqlApps.splice(0)) await app.app.close();
    await redis?.stop();
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
  });

  async function bootRpc(count: number): Promise<RpcApp[]> {
    const apps = await Promise.all(
      Array.from({ length: count }, () => startRpcApp({ stores: [redisStore(redis.url)], storeTimeout: 300 })),
    );
    rpcApps.push(...apps);
    return apps;
  }

  it('runs a message handler once for concurrent equal sends to 3 instances (cluster single flight)', async () => {
    rpcGate.current = new Gate();
    const apps = await bootRpc(INSTANCES);
    expect(apps.map((a) => a.app.get(CacheService).singleFlight)).toEqual(['cluster', 'cluster', 'cluster']);
    const replies = Promise.all(apps.flatMap((a) => Array.from({ length: 10 }, () => a.send('items.get', { id: 5 }))));
    await vi.waitFor(() => expect(rpcGate.current.waiting).toBe(1), { timeout: 10_000, interval: 10 });
    // the others wait for the leader's value instead of running the handler
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(rpcCalls.count('items.get')).toBe(1);
    rpcGate.current.open();
    const all = await replies;
    expect(new Set(all.map((r) => JSON.stringify(r)))).toEqual(
      new Set([JSON.stringify({ id: 5, filter: null, run: 1 })]),
    );
    expect(rpcCalls.count('items.get')).toBe(1);
  });

  it('serves another instance from the L2 (a later send to a second instance is a hit)', async () => {
    const [a, b] = await bootRpc(2);
    await a.send('items.get', { id: 1 });
    expect(await b.send('items.get', { id: 1 })).toEqual({ id: 1, filter: null, run: 1 });
    expect(rpcCalls.count('items.get')).toBe(1);
    expect(b.app.get(CacheService).stats().hits).toBe(1);
  });

  it('fails open: with Redis killed, messages are answered by the handler', async () => {
    const [a] = await bootRpc(1);
    await a.send('items.get', { id: 1 });
    await redis.stop();
    expect(await a.send('items.get', { id: 2 })).toEqual({ id: 2, filter: null, run: 2 });
    expect(await a.send('items.get', { id: 3 })).toEqual({ id: 3, filter: null, run: 3 });
    // and what this instance has in memory is still served
    expect(await a.send('items.get', { id: 1 })).toEqual({ id: 1, filter: null, run: 1 });
  });

  it('gives another instance a resolver result with its types (a Date field is not read back as a string, then null)', async () => {
    const apps = await Promise.all(
      [0, 1].map(() => startGqlApp({ stores: [redisStore(redis.url)], storeTimeout: 300 })),
    );
    gqlApps.push(...apps);
    const expected = { data: { item: { createdAt: CREATED_AT.toISOString() } } };
    expect(await apps[0].query('{ item(id: 3, q: "dated") { createdAt } }')).toEqual(expected);
    expect(await apps[1].query('{ item(id: 3, q: "dated") { createdAt } }')).toEqual(expected);
    expect(await apps[1].query('{ item(id: 3, q: "dated") { createdAt } }')).toEqual(expected);
  });

  it('answers within a bounded time while redis-server is frozen (SIGSTOP) and again once it runs', async () => {
    const apps = await bootRpc(2);
    await apps[0].send('items.get', { id: 1 });
    const child = (redis as unknown as { process: import('node:child_process').ChildProcess }).process;
    child.kill('SIGSTOP');
    try {
      const started = Date.now();
      const replies = await Promise.all([apps[0].send('items.get', { id: 2 }), apps[1].send('items.get', { id: 2 })]);
      // each instance computes itself once the coordination times out: storeTimeout (300) per Redis call, far below
      // the 5 s singleFlightWait plus two storeTimeouts a request may wait at most
      expect(Date.now() - started).toBeLessThan(5_000 + 2 * 300 + 3_000);
      expect(replies.map((r) => (r as { id: number }).id)).toEqual([2, 2]);
    } finally {
      child.kill('SIGCONT');
    }
    expect(await apps[1].send('items.get', { id: 3 })).toMatchObject({ id: 3 });
  });

  it('closes an instance while a handler runs under the lease: the waiting instance still answers', async () => {
    rpcGate.current = new Gate();
    const [a, b] = await bootRpc(2);
    const fromA = a.send('items.get', { id: 6 }).catch((error: unknown) => error);
    await vi.waitFor(() => expect(rpcGate.current.waiting).toBe(1), { timeout: 10_000, interval: 10 });
    const fromB = b.send('items.get', { id: 6 });
    const closing = a.app.close();
    rpcGate.current.open();
    await closing;
    rpcApps.splice(rpcApps.indexOf(a), 1);
    await a.client.close();
    expect(await fromB).toMatchObject({ id: 6 });
    await fromA;
  });

  it('boots with Redis down and answers messages; once Redis is up, another instance gets the entry', async () => {
    await redis.stop();
    const [a] = await bootRpc(1);
    expect(await a.send('items.get', { id: 1 })).toEqual({ id: 1, filter: null, run: 1 });
    expect(await a.send('items.get', { id: 1 })).toEqual({ id: 1, filter: null, run: 1 });
    await redis.restart();
    await vi.waitFor(
      async () => {
        const [b] = await bootRpc(1);
        const id = Math.random();
        const reply = await a.send('items.get', { id });
        const runs = rpcCalls.count('items.get');
        expect(await b.send('items.get', { id })).toEqual(reply);
        expect(rpcCalls.count('items.get')).toBe(runs);
      },
      { timeout: 15_000, interval: 500 },
    );
  });

  it('runs a @Query resolver once across 2 instances on one Redis, and fails open with Redis killed', async () => {
    gqlGate.current = new Gate();
    const apps = await Promise.all(
      [0, 1].map(() => startGqlApp({ stores: [redisStore(redis.url)], storeTimeout: 300 })),
    );
    gqlApps.push(...apps);
    const replies = Promise.all(apps.flatMap((a) => [0, 1, 2, 3].map(() => a.query('{ item(id: 4) { run } }'))));
    await vi.waitFor(() => expect(gqlGate.current.waiting).toBe(1), { timeout: 10_000, interval: 10 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    gqlGate.current.open();
    expect(new Set((await replies).map((r) => JSON.stringify(r)))).toEqual(new Set(['{"data":{"item":{"run":1}}}']));
    expect(gqlCalls.count('item')).toBe(1);
    await redis.stop();
    expect(await apps[1].query('{ item(id: 8) { run } }')).toEqual({ data: { item: { run: 2 } } });
  });
});
