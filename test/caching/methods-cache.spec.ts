import { Controller, Get, Injectable, Logger, type Type } from '@nestjs/common';
import { Test, type TestingModule } from '@nestjs/testing';
import {
  Cached,
  CacheEvict,
  CacheService,
  ConcurrencyModule,
  type ConcurrencyModuleOptions,
  InvalidCachedMethodError,
} from 'nestjs-concurrency';
import { setTimeout as delay } from 'node:timers/promises';
import { DashboardService } from '../../lib/observability/dashboard/dashboard.service.js';

class Gate {
  private release!: () => void;
  readonly opened = new Promise<void>((resolve) => (this.release = resolve));
  open(): void {
    this.release();
  }
}

@Injectable()
class Users {
  runs = 0;
  failNext = false;
  gate?: Gate;
  version = 1;

  @Cached({ ttl: 60_000, tags: [(id: unknown) => `user:${String(id)}`] })
  async find(id: unknown, options?: unknown): Promise<{ id: unknown; options?: unknown; run: number; v: number }> {
    this.runs++;
    const run = this.runs;
    const v = this.version; // read before the gate, as a database read would
    await this.gate?.opened;
    if (this.failNext) {
      this.failNext = false;
      throw new Error(`lookup ${run} failed`);
    }
    return { id, options, run, v };
  }

  @Cached({ key: (id: string) => `profile:${id}`, ttl: 60_000 })
  async profile(id: string): Promise<string> {
    this.runs++;
    return `${id}#${this.runs}`;
  }

  @Cached({ ttl: 60_000 })
  async nothing(): Promise<undefined> {
    this.runs++;
    return undefined;
  }

  @CacheEvict({ tags: [(id: string) => `user:${id}`], keys: [(id: string) => `profile:${id}`] })
  async rename(id: string, fail = false): Promise<string> {
    await delay(5);
    if (fail) throw new Error('rename refused');
    this.version++;
    return id;
  }

  /** Not decorated: untouched. */
  async plain(): Promise<number> {
    return 1;
  }
}

@Controller('users')
class UsersController {
  runs = 0;

  @Get()
  @Cached({ ttl: 60_000 })
  async list(): Promise<{ runs: number }> {
    this.runs++;
    return { runs: this.runs };
  }
}

async function boot(providers: Type[], options: ConcurrencyModuleOptions = {}, controllers: Type[] = []) {
  const moduleRef = await Test.createTestingModule({
    imports: [ConcurrencyModule.forRoot(options)],
    providers,
    controllers,
  }).compile();
  await moduleRef.init();
  return moduleRef;
}

describe('@Cached on provider methods', () => {
  let moduleRef: TestingModule;
  let users: Users;
  let cache: CacheService;
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);

  beforeEach(async () => {
    unhandled.length = 0;
    process.on('unhandledRejection', onUnhandled);
    moduleRef = await boot([Users], {}, [UsersController]);
    users = moduleRef.get(Users);
    cache = moduleRef.get(CacheService);
  });

  afterEach(async () => {
    await moduleRef.close();
    process.off('unhandledRejection', onUnhandled);
    expect(unhandled).toEqual([]);
  });

  it('runs the method once for 100 concurrent calls with equal arguments, and every caller gets its value', async () => {
    users.gate = new Gate();
    const calls = Array.from({ length: 100 }, () => users.find(7, { a: 1, b: [1, 2] }));
    await delay(20);
    users.gate.open();
    const values = await Promise.all(calls);
    expect(users.runs).toBe(1);
    expect(new Set(values.map((v) => v.run))).toEqual(new Set([1]));
    expect(cache.stats().methods['Users.find']).toMatchObject({ misses: 1, coalesced: 99 });
  });

  it('computes different arguments separately, and equal content in another key order shares one entry', async () => {
    const a = await users.find(1, { x: 1, y: 2 });
    const b = await users.find(2, { x: 1, y: 2 });
    const c = await users.find(1, { y: 2, x: 1 });
    const d = await users.find('1', { x: 1, y: 2 });
    expect(users.runs).toBe(3);
    expect(c).toBe(a);
    expect(new Set([a.run, b.run, d.run]).size).toBe(3);
  });

  it('serves later calls from the cache (the same value), counted as hits per method', async () => {
    const first = await users.find(3);
    const second = await users.find(3);
    expect(second).toBe(first);
    expect(users.runs).toBe(1);
    const stats = cache.stats();
    expect(stats.methods['Users.find']).toEqual({ hits: 1, misses: 1, stale: 0, coalesced: 0, clusterFollowers: 0 });
    expect(stats).toMatchObject({ hits: 1, misses: 1 });
  });

  it('does not cache a throw: every waiting caller gets the error, and the next call runs again', async () => {
    users.failNext = true;
    users.gate = new Gate();
    const calls = Array.from({ length: 20 }, () =>
      users.find(9).then(
        () => 'ok',
        (error: Error) => error.message,
      ),
    );
    await delay(20);
    users.gate.open();
    expect(new Set(await Promise.all(calls))).toEqual(new Set(['lookup 1 failed']));
    expect(users.runs).toBe(1);
    const value = await users.find(9);
    expect(value.run).toBe(2);
  });

  it('uses the key function of the arguments as the whole key', async () => {
    expect(await users.profile('ann')).toBe('ann#1');
    expect(await users.profile('ann')).toBe('ann#1');
    expect(await cache.get('profile:ann')).toBe('ann#1');
  });

  it('caches undefined like any value', async () => {
    expect(await users.nothing()).toBeUndefined();
    expect(await users.nothing()).toBeUndefined();
    expect(users.runs).toBe(1);
  });

  it('evicts the tags and keys of @CacheEvict after the method resolved, not after a throw', async () => {
    await users.find('ann');
    await users.profile('ann');
    const runs = users.runs;
    await expect(users.rename('ann', true)).rejects.toThrow('rename refused');
    expect((await users.find('ann')).v).toBe(1);
    expect(await users.profile('ann')).toBe(`ann#${runs}`);
    expect(users.runs).toBe(runs);

    expect(await users.rename('ann')).toBe('ann');
    const fresh = await users.find('ann');
    expect(fresh.v).toBe(2);
    expect(await users.profile('ann')).toBe(`ann#${runs + 2}`);
  });

  it('evicts only the tag the arguments name', async () => {
    await users.find('ann');
    await users.find('bob');
    await users.rename('ann');
    expect(users.runs).toBe(2);
    await users.find('bob');
    expect(users.runs).toBe(2);
    await users.find('ann');
    expect(users.runs).toBe(3);
  });

  it('does not store a value computed before an eviction of its tag that came while it ran', async () => {
    users.gate = new Gate();
    const before = users.find('ann'); // reads version 1, held at the gate
    await delay(20);
    await users.rename('ann'); // version 2, evicts user:ann while the read is in flight
    users.gate.open();
    expect((await before).v).toBe(1); // its caller gets what it read
    users.gate = undefined;
    expect((await users.find('ann')).v).toBe(2); // but it was not stored over the eviction
  });

  it('does not store a value whose tag CacheService.evictTags() evicted while it was computed', async () => {
    const gate = (users.gate = new Gate());
    const inFlight = users.find('bob');
    await delay(20);
    await cache.evictTags(['user:bob']);
    gate.open();
    await inFlight;
    users.gate = undefined;
    const runs = users.runs;
    await users.find('bob');
    expect(users.runs).toBe(runs + 1);
  });

  it('leaves undecorated methods and controller routes as they are', async () => {
    expect(Object.hasOwn(users, 'plain')).toBe(false);
    expect(Object.hasOwn(users, 'find')).toBe(true);
    const controller = moduleRef.get(UsersController);
    expect(Object.hasOwn(controller, 'list')).toBe(false);
    await controller.list();
    await controller.list();
    expect(controller.runs).toBe(2); // a route is cached per request by the interceptor, not as a method
  });
});

describe('@Cached on provider methods: shutdown', () => {
  it('settles a call whose computation is still running when the app closes, with no unhandled rejection', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const moduleRef = await boot([Users]);
      const users = moduleRef.get(Users);
      const gate = (users.gate = new Gate());
      const calls = Array.from({ length: 10 }, () => users.find('late'));
      await delay(20);
      const closed = moduleRef.close();
      gate.open();
      await closed;
      const values = await Promise.all(calls);
      expect(new Set(values.map((v) => v.run))).toEqual(new Set([1]));
      await delay(50);
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

describe('@Cached on provider methods: the dashboard', () => {
  it("counts each cached method in the dashboard's cache section", async () => {
    const moduleRef = await boot([Users], { dashboard: { guard: false } });
    try {
      const users = moduleRef.get(Users);
      await users.find(1);
      await users.find(1);
      await users.profile('x');
      const snapshot = await moduleRef.get(DashboardService).snapshot();
      expect(snapshot.cache.methods).toEqual({
        'Users.find': { hits: 1, misses: 1, stale: 0, coalesced: 0, clusterFollowers: 0 },
        'Users.profile': { hits: 0, misses: 1, stale: 0, coalesced: 0, clusterFollowers: 0 },
        'Users.nothing': { hits: 0, misses: 0, stale: 0, coalesced: 0, clusterFollowers: 0 },
      });
      expect(snapshot.cache).toMatchObject({ hits: 1, misses: 2 });
    } finally {
      await moduleRef.close();
    }
  });
});

describe('@Cached on provider methods: stale-while-revalidate and ttl', () => {
  @Injectable()
  class Prices {
    runs = 0;
    @Cached({ ttl: 100, staleWhileRevalidate: 60_000 })
    async price(sku: string): Promise<string> {
      this.runs++;
      await delay(10);
      return `${sku}@${this.runs}`;
    }

    @Cached({ ttl: 50 })
    async short(): Promise<number> {
      return ++this.runs;
    }
  }

  let moduleRef: TestingModule;
  afterEach(async () => moduleRef.close());

  it('serves the stale value at once after ttl while one background refresh runs, then the new value', async () => {
    moduleRef = await boot([Prices]);
    const prices = moduleRef.get(Prices);
    const cache = moduleRef.get(CacheService);
    expect(await prices.price('a')).toBe('a@1');
    await delay(250);
    const stale = await Promise.all(Array.from({ length: 10 }, () => prices.price('a')));
    expect(new Set(stale)).toEqual(new Set(['a@1']));
    await vi.waitFor(() => expect(prices.runs).toBe(2), { timeout: 5000 });
    await vi.waitFor(async () => expect(await prices.price('a')).toBe('a@2'), { timeout: 5000 });
    expect(prices.runs).toBe(2);
    expect(cache.stats().methods['Prices.price'].stale).toBeGreaterThanOrEqual(1);
  });

  it('keeps serving the stale value when a background refresh throws, with no unhandled rejection', async () => {
    @Injectable()
    class Flaky {
      runs = 0;
      @Cached({ ttl: 100, staleWhileRevalidate: 60_000 })
      async rate(): Promise<number> {
        this.runs++;
        if (this.runs > 1) throw new Error('upstream down');
        return 1.25;
      }
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    const warn = vi.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    try {
      moduleRef = await boot([Flaky]);
      const flaky = moduleRef.get(Flaky);
      expect(await flaky.rate()).toBe(1.25);
      await delay(250);
      expect(await flaky.rate()).toBe(1.25);
      await vi.waitFor(() => expect(moduleRef.get(CacheService).stats().refreshErrors).toBe(1), { timeout: 5000 });
      expect(await flaky.rate()).toBe(1.25);
      expect(flaky.runs).toBe(2); // the failed key waits (backoff) before another refresh
      expect(unhandled).toEqual([]);
    } finally {
      warn.mockRestore();
      process.off('unhandledRejection', onUnhandled);
    }
  });

  it('computes again once the ttl is over', async () => {
    moduleRef = await boot([Prices]);
    const prices = moduleRef.get(Prices);
    expect(await prices.short()).toBe(1);
    expect(await prices.short()).toBe(1);
    await delay(200);
    expect(await prices.short()).toBe(2);
  });
});

describe('@Cached on provider methods: boot checks', () => {
  async function bootFails(providers: Type[]): Promise<Error> {
    try {
      const moduleRef = await boot(providers);
      await moduleRef.close();
    } catch (error) {
      return error as Error;
    }
    throw new Error('boot did not fail');
  }

  it('fails boot naming a method that is neither async nor declared to return a Promise', async () => {
    @Injectable()
    class Sync {
      @Cached()
      total(): number {
        return 1;
      }
    }
    const error = await bootFails([Sync]);
    expect(error).toBeInstanceOf(InvalidCachedMethodError);
    expect(error.message).toContain('Sync.total');
    expect(error.message).toContain('async');
  });

  it('accepts a method that is not async but declares a Promise, and rejects a call whose result is no Promise', async () => {
    @Injectable()
    class Declared {
      lie = false;
      @Cached()
      load(n: number): Promise<number> {
        return (this.lie ? n : Promise.resolve(n * 2)) as Promise<number>;
      }
    }
    const moduleRef = await boot([Declared]);
    const declared = moduleRef.get(Declared);
    expect(await declared.load(2)).toBe(4);
    declared.lie = true;
    await expect(declared.load(3)).rejects.toThrow(/Declared\.load: the method returned 3, not a Promise/);
    declared.lie = false;
    expect(await declared.load(3)).toBe(6); // nothing was cached
    await moduleRef.close();
  });

  it('refuses vary on a provider method, and @Cached with @CacheEvict on one method', async () => {
    @Injectable()
    class Varies {
      @Cached({ vary: ['user'] })
      async a(): Promise<number> {
        return 1;
      }
    }
    expect((await bootFails([Varies])).message).toMatch(/Varies\.a: option "vary" applies to HTTP routes only/);
    @Injectable()
    class Both {
      @Cached()
      @CacheEvict({ tags: ['x'] })
      async a(): Promise<number> {
        return 1;
      }
    }
    expect((await bootFails([Both])).message).toContain('Both.a has both @Cached and @CacheEvict');
  });

  it('refuses two different classes of one name whose methods would share keys', async () => {
    const make = () => {
      @Injectable()
      class Same {
        @Cached()
        async a(): Promise<number> {
          return 1;
        }
      }
      return Same;
    };
    const A = make();
    const B = make();
    const error = await bootFails([A, { provide: 'other', useClass: B } as never]);
    expect(error.message).toContain('two different classes are named Same');
  });
});
