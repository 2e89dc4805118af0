import type KeyvRedis from '@keyv/redis';
import { Test, type TestingModule } from '@nestjs/testing';
import type { Keyv } from 'keyv';
import { CacheService, type CacheStats, ConcurrencyModule } from 'nestjs-concurrency';
import { type AddressInfo, createServer } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { Gate } from '../fixtures/cache-app.js';
import { redisStore } from '../fixtures/cache-redis.js';
import { partitionedRedisStore } from '../fixtures/cache-stores.js';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const INSTANCES = 4;

/** The few commands a spec sends on a connection of its own. */
interface RawClient {
  connect(): Promise<unknown>;
  sendCommand(args: string[]): Promise<unknown>;
  quit(): Promise<unknown>;
}
const CONCURRENT = 250;

interface Instance {
  module: TestingModule;
  cache: CacheService;
  store: Keyv;
}

function total(instances: Instance[], counter: keyof CacheStats): number {
  return instances.reduce((sum, i) => sum + i.cache.stats()[counter], 0);
}

/** Calls `getOrStore(key)` `CONCURRENT` times at once on every instance; `fn(i)` is instance i's computation. */
function burst<T>(instances: Instance[], key: string, fn: (i: number) => () => Promise<T>): Promise<T[]> {
  return Promise.all(
    instances.flatMap((instance, i) =>
      Array.from({ length: CONCURRENT }, () => instance.cache.getOrStore(key, fn(i), 60_000)),
    ),
  );
}

describe.skipIf(!redisAvailable)('cache.singleFlight: cluster (CacheService on a real Redis)', () => {
  let redis: RedisServer;
  let instances: Instance[] = [];
  const storeTimeout = 300;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  async function boot(cache: Record<string, unknown> = {}, count = INSTANCES): Promise<Instance[]> {
    const booted = await Promise.all(
      Array.from({ length: count }, async () => {
        const store = redisStore(redis.url);
        const module = await Test.createTestingModule({
          imports: [ConcurrencyModule.forRoot({ cache: { stores: [store], storeTimeout, ...cache } })],
        }).compile();
        await module.init();
        return { module, cache: module.get(CacheService), store };
      }),
    );
    instances.push(...booted);
    if (cache.singleFlight === 'instance') return booted;
    // The release messages travel on each instance's subscriber: wait until every one listens.
    const client = await (booted[0].store.store as KeyvRedis<unknown>).getClient();
    await vi.waitFor(
      async () => {
        const subscribers = (await client.pubSubNumSub('cache-e2e:nestjs-concurrency:cache:flight')) as Record<
          string,
          number
        >;
        expect(Object.values(subscribers)[0]).toBeGreaterThanOrEqual(instances.length);
      },
      { timeout: 10_000, interval: 20 },
    );
    return booted;
  }

  beforeEach(async () => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
    redis = await RedisServer.start();
  });

  afterEach(async () => {
    for (const instance of instances.splice(0)) await instance.module.close();
    await redis?.stop();
    process.off('unhandledRejection', onUnhandled);
  });

  it('is the default with a @keyv/redis store, and computes a cold key once for 4 instances x 250 calls', async () => {
    const all = await boot();
    expect(all.map((i) => i.cache.singleFlight)).toEqual(['cluster', 'cluster', 'cluster', 'cluster']);
    let computations = 0;
    const values = await burst(all, 'cold', (i) => async () => {
      computations++;
      await delay(50); // the slow upstream
      return { from: i };
    });
    expect(computations).toBe(1);
    expect(new Set(values.map((v) => JSON.stringify(v))).size).toBe(1);
    expect(total(all, 'misses')).toBe(1);
    expect(total(all, 'clusterFallbacks')).toBe(0);
    // every call is counted once: the leader's, those that joined it, and the other instances' (followers or hits)
    expect(total(all, 'misses') + total(all, 'coalesced') + total(all, 'clusterFollowers') + total(all, 'hits')).toBe(
      INSTANCES * CONCURRENT,
    );
    expect(total(all, 'clusterFollowers')).toBeGreaterThan(0);
    // the lease is gone once the value is stored
    const client = await (all[0].store.store as KeyvRedis<unknown>).getClient();
    await vi.waitFor(async () => expect(await client.keys('*lease*')).toEqual([]), { timeout: 2000, interval: 20 });
  });

  it("computes once per instance with singleFlight: 'instance'", async () => {
    const all = await boot({ singleFlight: 'instance' });
    let computations = 0;
    await burst(all, 'cold', (i) => async () => {
      computations++;
      await delay(50);
      return { from: i };
    });
    expect(computations).toBe(INSTANCES);
    expect(total(all, 'clusterFollowers')).toBe(0);
  });

  it('lets the followers of a hung leader compute themselves once the bounded wait is over', async () => {
    const wait = 400;
    const [leader, ...followers] = await boot({ singleFlightWait: wait });
    const gate = new Gate();
    const hung = leader.cache.getOrStore('hung', async () => {
      await gate.pass(); // holds the lease until the end of the test
      return 'leader';
    });
    await vi.waitFor(() => expect(gate.waiting).toBe(1), { timeout: 5000, interval: 10 });
    const started = performance.now();
    const answers = await Promise.all(
      followers.map((f, i) =>
        Promise.all(
          Array.from({ length: CONCURRENT }, () =>
            f.cache.getOrStore('hung', async () => {
              await delay(50);
              return `follower ${i}`;
            }),
          ),
        ).then((values) => ({ values, at: performance.now() - started })),
      ),
    );
    for (const [i, { values, at }] of answers.entries()) {
      expect(new Set(values)).toEqual(new Set([`follower ${i}`]));
      expect(at).toBeGreaterThanOrEqual(wait - 5); // they did wait for the leader...
      expect(at).toBeLessThan(wait + 50 + 1500); // ...no longer than the bounded wait plus their own computation
    }
    expect(followers.map((f) => f.cache.stats().clusterFallbacks)).toEqual([1, 1, 1]);
    expect(followers.map((f) => f.cache.stats().misses)).toEqual([1, 1, 1]);
    gate.open();
    expect(await hung).toBe('leader');
  });

  it("gives a follower whose subscriber is not subscribed the leader's value: it polls instead of computing", async () => {
    const wait = 5_000;
    const [leader] = await boot({ singleFlightWait: wait }, 1);
    const gate = new Gate();
    const hung = leader.cache.getOrStore('deaf', async () => {
      await gate.pass(); // holds the lease until the gate opens
      return 'leader';
    });
    await vi.waitFor(() => expect(gate.waiting).toBe(1), { timeout: 5000, interval: 10 });
    // A follower whose subscriber never gets subscribed: its duplicate connects to a server that accepts the
    // connection and never answers (no error either), so it would never hear the leader's release.
    const silent = createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as AddressInfo;
    const store = redisStore(redis.url);
    const client = (store.store as KeyvRedis<unknown>).client as unknown as {
      duplicate(overrides?: object): unknown;
    };
    const duplicate = client.duplicate.bind(client);
    client.duplicate = (overrides?: object) => duplicate({ ...overrides, url: `redis://127.0.0.1:${port}` });
    const module = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot({ cache: { stores: [store], storeTimeout, singleFlightWait: wait } })],
    }).compile();
    await module.init();
    const follower = { module, cache: module.get(CacheService), store };
    instances.push(follower);
    let computed = false;
    const started = performance.now();
    const answer = follower.cache.getOrStore('deaf', async () => {
      computed = true;
      return 'follower';
    });
    await delay(200); // the follower is waiting (polling) meanwhile
    gate.open();
    expect(await hung).toBe('leader');
    expect(await answer).toBe('leader');
    expect(computed).toBe(false);
    expect(performance.now() - started).toBeLessThan(wait);
    expect(follower.cache.stats().clusterFallbacks).toBe(0);
    silent.close();
  });

  it("keeps the followers waiting for the leader's value when their pub/sub connections are killed", async () => {
    const all = await boot();
    const client = await (all[0].store.store as KeyvRedis<unknown>).getClient();
    await client.configResetStat();
    const gate = new Gate();
    let computations = 0;
    const calls = burst(all, 'pubsub-lost', (i) => async () => {
      computations++;
      await gate.pass();
      return { from: i };
    });
    await vi.waitFor(() => expect(gate.waiting).toBe(1), { timeout: 5000, interval: 10 });
    // every instance tried to take the lease (one SET NX each): the followers wait for the release
    await vi.waitFor(async () => expect(await client.info('commandstats')).toMatch(/cmdstat_set:calls=4,/), {
      timeout: 5000,
      interval: 10,
    });
    await (client as unknown as RawClient).sendCommand(['CLIENT', 'KILL', 'TYPE', 'pubsub']);
    // the subscribers noticed (they reconnected): a release published meanwhile was lost to them
    await vi.waitFor(
      async () => {
        const numsub = (await client.pubSubNumSub('cache-e2e:nestjs-concurrency:cache:flight')) as Record<
          string,
          number
        >;
        expect(Object.values(numsub)[0]).toBe(INSTANCES);
      },
      { timeout: 10_000, interval: 20 },
    );
    gate.open();
    const values = await calls;
    expect(computations).toBe(1);
    expect(new Set(values.map((v) => JSON.stringify(v))).size).toBe(1);
    expect(total(all, 'clusterFallbacks')).toBe(0);
  });

  it('lets the followers of a leader whose instance shut down mid-computation compute after the bounded wait', async () => {
    const wait = 400;
    const [leader, ...followers] = await boot({ singleFlightWait: wait });
    const gate = new Gate();
    const orphan = leader.cache.getOrStore('orphan', async () => {
      await gate.pass();
      return 'leader';
    });
    await vi.waitFor(() => expect(gate.waiting).toBe(1), { timeout: 5000, interval: 10 });
    await leader.module.close(); // its lease stays in Redis until it expires: nobody will release it
    instances.splice(instances.indexOf(leader), 1);
    const started = performance.now();
    const values = await burst(followers, 'orphan', (i) => async () => `follower ${i}`);
    const took = performance.now() - started;
    // Each answer is a follower's own computation. Once the orphan lease expires, a follower may take the key and
    // release it before another follower's wait has run out: that one then reads the first one's value (fewer
    // computations, never more than one per instance).
    for (const value of values) expect(['follower 0', 'follower 1', 'follower 2']).toContain(value);
    expect(took).toBeGreaterThanOrEqual(wait - 5);
    expect(took).toBeLessThan(wait + 1500);
    // At most one computation per instance, whether it ran as a fallback or as the next lease holder.
    expect(total(followers, 'clusterFallbacks')).toBeLessThanOrEqual(3);
    for (const i of followers.keys()) {
      const own = values.slice(i * CONCURRENT, (i + 1) * CONCURRENT);
      expect(new Set(own).size).toBe(1);
    }
    gate.open();
    expect(await orphan).toBe('leader'); // the closed instance still answers its caller (no store, no release)
    await delay(0);
    expect(unhandled).toEqual([]);
  });

  it('hands the key to one follower when the leader fails, and the others get its value', async () => {
    const [leader, ...followers] = await boot();
    const gate = new Gate();
    const failed = leader.cache.getOrStore('fails', async () => {
      await gate.pass();
      throw new Error('upstream down');
    });
    await vi.waitFor(() => expect(gate.waiting).toBe(1), { timeout: 5000, interval: 10 });
    let computations = 0;
    const waiting = burst(followers, 'fails', (i) => async () => {
      computations++;
      await delay(50);
      return `follower ${i}`;
    });
    // every follower instance waits on the lease (none computes while the leader runs)
    await vi.waitFor(
      async () => {
        const client = await (leader.store.store as KeyvRedis<unknown>).getClient();
        expect(await client.keys('*lease*')).toHaveLength(1);
      },
      { timeout: 5000, interval: 10 },
    );
    expect(computations).toBe(0);
    gate.open();
    await expect(failed).rejects.toThrow('upstream down');
    const values = await waiting;
    expect(computations).toBe(1);
    expect(new Set(values).size).toBe(1);
    expect(total(followers, 'clusterFallbacks')).toBe(0);
  });

  it('answers every call when Redis stops mid-burst: at most one computation per instance', async () => {
    const all = await boot({ singleFlightWait: 10_000 });
    const gate = new Gate();
    const computations = all.map(() => 0);
    const calls = burst(all, 'outage', (i) => async () => {
      computations[i]++;
      await gate.pass();
      return { from: i };
    });
    // one leader computes (held at the gate), the other instances wait for it on Redis
    await vi.waitFor(() => expect(gate.waiting).toBe(1), { timeout: 5000, interval: 10 });
    await redis.stop();
    // the waiters do not wait out singleFlightWait (10 s): they compute themselves, then the gate lets all finish
    await vi.waitFor(() => expect(gate.waiting).toBe(INSTANCES), { timeout: 4 * storeTimeout + 3000, interval: 10 });
    gate.open();
    const values = await calls;
    expect(values).toHaveLength(INSTANCES * CONCURRENT);
    expect(Math.max(...computations)).toBe(1);
    expect(total(all, 'clusterFallbacks')).toBe(INSTANCES - 1);
    // a new key with Redis down: computed here, within the store timeout
    const started = performance.now();
    expect(await all[1].cache.getOrStore('after', async () => 'local')).toBe('local');
    expect(performance.now() - started).toBeLessThan(storeTimeout * 3 + 1000);
    await delay(0);
    expect(unhandled).toEqual([]);
  });

  /** `fn` for `burst` that takes `ms`, and records how many computations ran and how many at once at most. */
  function tracked<T>(ms: number, value: (i: number) => T) {
    const seen = { computations: 0, running: 0, maxRunning: 0 };
    const fn = (i: number) => async () => {
      seen.computations++;
      seen.maxRunning = Math.max(seen.maxRunning, ++seen.running);
      await delay(ms);
      seen.running--;
      return value(i);
    };
    return { seen, fn };
  }

  it('lets the followers of a leader whose value Redis cannot store compute at once, in parallel, each counted', async () => {
    const all = await boot();
    const { seen, fn } = tracked(300, (i) => ({ from: i, big: 10n }));
    const values = await burst(all, 'unstorable', fn);
    expect(values).toHaveLength(INSTANCES * CONCURRENT);
    expect(seen.computations).toBeLessThanOrEqual(INSTANCES);
    // every computation after the leader's is a follower that found nothing to read, counted as such
    expect(total(all, 'clusterFallbacks')).toBe(seen.computations - 1);
    // and they ran together once the leader released the key, not one after another
    expect(seen.maxRunning).toBe(seen.computations - 1);
  });

  it("stores and reads the leader's value right after a Redis hiccup opened the stores' breaker: one computation", async () => {
    const all = await boot();
    const client = await (all[0].store.store as KeyvRedis<unknown>).getClient();
    await all[0].cache.getOrStore('before', async () => 'warm');
    // The clock stands still: the breakers opened by the hiccup stay open for the rest of the test.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      // A hiccup: Redis answers no command for longer than storeTimeout; every instance's read times out.
      const pauser = (client as unknown as { duplicate(): RawClient }).duplicate();
      await pauser.connect();
      await pauser.sendCommand(['CLIENT', 'PAUSE', String(storeTimeout * 2), 'ALL']);
      expect(await Promise.all(all.map((i) => i.cache.get('hiccup-probe')))).toEqual(all.map(() => undefined));
      await pauser.sendCommand(['CLIENT', 'UNPAUSE']);
      await pauser.quit();
      expect(total(all, 'errors')).toBe(INSTANCES); // each instance's read timed out: its breaker is open
      const { seen, fn } = tracked(300, (i) => ({ from: i }));
      const values = await burst(all, 'after-hiccup', fn);
      expect(values).toHaveLength(INSTANCES * CONCURRENT);
      expect(seen.computations).toBe(1);
      expect(total(all, 'clusterFallbacks')).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });

  it("skips writing a value over maxValueSize (Redis's own limit would drop the connection): waiters compute at once", async () => {
    const wait = 5000;
    const all = await boot({ singleFlightWait: wait });
    const client = await (all[0].store.store as KeyvRedis<unknown>).getClient();
    await client.configSet('proto-max-bulk-len', '1mb'); // the server refuses larger strings, closing the connection
    const { seen, fn } = tracked(300, (i) => ({ from: i, blob: 'x'.repeat(1_100_000) }));
    const started = performance.now();
    const values = await burst(all, 'huge', fn);
    const took = performance.now() - started;
    expect(values).toHaveLength(INSTANCES * CONCURRENT);
    expect(took).toBeLessThan(wait); // nobody waited for a release that never came
    expect(total(all, 'clusterFallbacks')).toBe(seen.computations - 1);
    expect(seen.maxRunning).toBe(seen.computations - 1);
    // the connection survived: a small value is still computed once and shared
    const { seen: small, fn: smallFn } = tracked(50, (i) => ({ from: i }));
    await burst(all, 'small', smallFn);
    expect(small.computations).toBe(1);
  });

  it('gives every caller on every instance the Date, Map and Set its computation returned: such a value is not written to Redis', async () => {
    const all = await boot();
    const { seen, fn } = tracked(300, (i) => ({
      from: i,
      at: new Date(0),
      seen: new Set(['a']),
      byId: new Map([[1, 'a']]),
    }));
    const values = await burst(all, 'typed', fn);
    for (const value of values) {
      expect(value.at).toBeInstanceOf(Date);
      expect(value.seen).toBeInstanceOf(Set);
      expect(value.byId).toBeInstanceOf(Map);
    }
    // each instance computed its own (at once, counted), and its callers all got that one
    expect(total(all, 'clusterFallbacks')).toBe(seen.computations - 1);
    for (const [i, instance] of all.entries()) {
      const mine = values.slice(i * CONCURRENT, (i + 1) * CONCURRENT);
      expect(new Set(mine).size).toBe(1);
      expect(await instance.cache.getOrStore('typed', async () => ({ from: -1 }), 60_000)).toBe(mine[0]);
    }
  });

  it('never touches the lease on a warm hit (from the L1 or from Redis)', async () => {
    const all = await boot();
    await all[0].cache.getOrStore('warm', async () => 'value');
    const client = await (all[0].store.store as KeyvRedis<unknown>).getClient();
    await vi.waitFor(async () => expect(await client.keys('*lease*')).toEqual([]), { timeout: 2000, interval: 20 });
    await client.configResetStat();
    const values = await burst(all, 'warm', () => async () => 'recomputed');
    expect(new Set(values)).toEqual(new Set(['value']));
    const stats = await client.info('commandstats');
    expect(stats).not.toMatch(/cmdstat_set:/); // no SET NX of a lease
    expect(stats).not.toMatch(/cmdstat_publish:/); // no release (its script publishes it)
    expect(total(all, 'hits')).toBe(INSTANCES * CONCURRENT);
  });
});

describe("cache.singleFlight: 'cluster' with a Redis that does not answer", () => {
  it('computes once on this instance within storeTimeout, then without waiting while Redis keeps failing', async () => {
    const { keyv, calls } = partitionedRedisStore();
    const module = await Test.createTestingModule({
      imports: [ConcurrencyModule.forRoot({ cache: { stores: [keyv], storeTimeout: 200, singleFlightWait: 10_000 } })],
    }).compile();
    await module.init();
    try {
      const cache = module.get(CacheService);
      expect(cache.singleFlight).toBe('cluster');
      let computations = 0;
      const fn = async () => {
        computations++;
        return 'local';
      };
      let started = performance.now();
      const values = await Promise.all(Array.from({ length: CONCURRENT }, () => cache.getOrStore('slow-redis', fn)));
      let took = performance.now() - started;
      expect(new Set(values)).toEqual(new Set(['local']));
      expect(computations).toBe(1);
      expect(calls.set).toBe(1); // one lease attempt for the 250 calls
      expect(took).toBeGreaterThanOrEqual(195); // it did ask Redis for the lease...
      expect(took).toBeLessThan(200 + 1000); // ...for storeTimeout, not singleFlightWait (10 s)
      // the next key within a second: Redis is skipped (no lease attempt, no wait)
      started = performance.now();
      expect(await cache.getOrStore('next', fn)).toBe('local');
      took = performance.now() - started;
      expect(calls.set).toBe(1);
      expect(took).toBeLessThan(195);
      expect(cache.stats().clusterFallbacks).toBe(2);
    } finally {
      await module.close();
    }
  });
});

describe('cache.singleFlight at boot', () => {
  async function boot(cache: Record<string, unknown>) {
    const module = await Test.createTestingModule({ imports: [ConcurrencyModule.forRoot({ cache })] }).compile();
    await module.init();
    return module;
  }

  it("is 'instance' without a Redis L2", async () => {
    const module = await boot({});
    expect(module.get(CacheService).singleFlight).toBe('instance');
    await module.close();
  });

  it("refuses 'cluster' without a @keyv/redis store, naming the option", async () => {
    await expect(boot({ singleFlight: 'cluster' })).rejects.toThrow(
      /"cache\.singleFlight": 'cluster' needs a @keyv\/redis store in cache\.stores/,
    );
  });

  it('refuses an unknown mode and a wait that is not a finite number of ms > 0, naming the option', async () => {
    await expect(boot({ singleFlight: 'global' })).rejects.toThrow(
      /"cache\.singleFlight": expected 'instance' or 'cluster', got "global"/,
    );
    for (const wait of [0, -1, Infinity, '100', 2 ** 31]) {
      await expect(boot({ singleFlightWait: wait })).rejects.toThrow(
        /"cache\.singleFlightWait": expected a number > 0/,
      );
    }
  });
});
