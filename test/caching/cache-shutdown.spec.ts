import KeyvRedis, { createClient } from '@keyv/redis';
import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheService,
  ConcurrencyModule,
  FanOut,
  getSupervisorToken,
  Interval,
  type TaskSupervisor,
} from 'nestjs-concurrency';
import { RedisServer, redisAvailable } from '../utils/redis-server.js';

const tcpHandles = () => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;

/** Opened by the spec once `app.close()` has begun: the work below is what the shutdown drains. */
class Gate {
  opened!: () => void;
  readonly passed = new Promise<void>((resolve) => (this.opened = resolve));
}

describe.skipIf(!redisAvailable)('CacheService at shutdown, with a Redis L2', () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await RedisServer.start();
    // the probe sockets of RedisServer.start() close on a later turn
    await new Promise((resolve) => setTimeout(resolve, 100));
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it('keeps the stores until every supervisor, job and fan-out has drained, then leaves no TCP handle', async () => {
    const baseline = tcpHandles();
    const gate = new Gate();
    const results: Record<string, unknown> = {};

    @Injectable()
    class DrainedJob {
      constructor(private readonly cache: CacheService) {}

      @Interval(20, { name: 'drained-job' })
      async tick() {
        if (results.jobStarted) return;
        results.jobStarted = true;
        await gate.passed;
        results.job = await this.cache.getOrStore('drained:job', () => 'job', 60_000);
      }
    }

    const app = await Test.createTestingModule({
      // a store as users create it (default client settings: a closed client reconnects on the next command)
      imports: [ConcurrencyModule.forRoot({ cache: { stores: [new KeyvRedis(redis.url)], storeTimeout: 1000 } })],
      providers: [DrainedJob],
    }).compile();
    await app.init();
    const cache = app.get(CacheService);
    const supervisor = app.get<TaskSupervisor>(getSupervisorToken('default'));
    const fanOut = app.get(FanOut);

    supervisor.startChild(async () => {
      await gate.passed;
      results.child = await cache.getOrStore('drained:child', () => 'child', 60_000);
      await cache.set('drained:set', 'set', 60_000);
    });
    const mapped = fanOut.map([1], async () => {
      await gate.passed;
      return cache.getOrStore('drained:map', () => 'map', 60_000);
    });
    await vi.waitFor(() => expect(results.jobStarted).toBe(true), { timeout: 5000, interval: 10 });

    const closing = app.close();
    // every onModuleDestroy hook has run by now; the work starts touching the cache only after that
    await new Promise((resolve) => setTimeout(resolve, 200));
    gate.opened();
    await closing;

    expect(await mapped).toEqual(['map']);
    expect(results).toMatchObject({ child: 'child', job: 'job' });
    expect(cache.stats().errors).toBe(0);
    // what the drained work wrote reached Redis
    const client = createClient({ url: redis.url });
    await client.connect();
    try {
      const keys = (await client.keys('*')).sort();
      expect(keys.filter((k) => k.includes('drained:'))).toHaveLength(4);
    } finally {
      client.destroy();
    }
    // and nothing reconnected after the stores were closed
    await vi.waitFor(() => expect(tcpHandles()).toBe(baseline), { timeout: 2000, interval: 20 });
  });
});
