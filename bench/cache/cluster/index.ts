/**
 * bench/cache/cluster: one computation per key across instances (issue 15). Four Nest apps in this process share one
 * real redis-server (started here, on a free loopback port) as their cache L2.
 *
 * - cold burst: 4 instances x 250 concurrent cold requests to one URL (autocannon, one per instance, all at once);
 *   handler calls for the stock @nestjs/cache-manager CacheInterceptor on the shared Redis store, ours with
 *   singleFlight 'instance', ours with 'cluster' (goal: 1)
 * - follower latency over the leader's ('cluster'): 4 x 250 concurrent cold CacheService.getOrStore calls in process
 *   (a 50 ms computation), all started at once; each follower call's latency minus the leader's, p50 and p99 per
 *   round (goal: <= +20 ms). In process, so the four HTTP load generators' own queueing does not swamp the figure.
 * - warm hits, 'cluster' against 'instance' (goal: no measurable cost, hits never touch the lease): ns per
 *   CacheService.getOrStore hit in process (21 alternating slices), and req/s of a cached route over loopback
 *
 * Rounds alternate the contenders (bench/harness.ts); each cold round uses a new key.
 */
import 'reflect-metadata';
import KeyvRedis from '@keyv/redis';
import { CacheInterceptor, CacheModule } from '@nestjs/cache-manager';
import { Controller, Get, type INestApplication, Module, type Type, UseInterceptors } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import autocannon from 'autocannon';
import { Keyv } from 'keyv';
import { Cached, CacheService, ConcurrencyModule } from 'nestjs-concurrency';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createServer, Socket } from 'node:net';
import { compare, goal, median, printPeakRss } from '../../harness.js';

const INSTANCES = 4;
const CONCURRENT = 250;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const HIT_SECONDS = Number(process.env.BENCH_CACHE_SECONDS ?? 2);
const HIT_CALLS = 20_000;
const TTL = 60_000;
const HANDLER_MS = 50;
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const PAYLOAD = { items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item ${i}`, price: i * 3 })) };

type Setup = 'stock' | 'instance' | 'cluster';

interface Instance {
  app: INestApplication;
  url: string;
  calls: { cold: number };
}

function keyv(url: string, namespace: string): Keyv {
  const store = new Keyv({
    store: new KeyvRedis({ url, disableOfflineQueue: true }, { throwOnConnectError: false }),
    namespace,
  });
  store.on('error', () => undefined);
  return store;
}

function appModule(setup: Setup, redisUrl: string, calls: { cold: number }): Type {
  const namespace = `bench-${setup}`;
  if (setup === 'stock') {
    @Controller()
    @UseInterceptors(CacheInterceptor)
    class StockController {
      @Get('cold')
      async cold() {
        calls.cold++;
        await delay(HANDLER_MS);
        return PAYLOAD;
      }

      @Get('warm')
      warm() {
        return PAYLOAD;
      }
    }
    @Module({
      imports: [CacheModule.register({ ttl: TTL, stores: [keyv(redisUrl, namespace)] })],
      controllers: [StockController],
    })
    class StockModule {}
    return StockModule;
  }

  @Controller()
  class OursController {
    @Get('cold')
    @Cached({ ttl: TTL })
    async cold() {
      calls.cold++;
      await delay(HANDLER_MS);
      return PAYLOAD;
    }

    @Get('warm')
    @Cached({ ttl: TTL })
    warm() {
      return PAYLOAD;
    }
  }
  @Module({
    imports: [
      ConcurrencyModule.forRoot({
        cache: { ttl: TTL, stores: [keyv(redisUrl, namespace)], singleFlight: setup, storeTimeout: 1000 },
      }),
    ],
    controllers: [OursController],
  })
  class OursModule {}
  return OursModule;
}

async function boot(setup: Setup, redisUrl: string): Promise<Instance[]> {
  const instances: Instance[] = [];
  for (let i = 0; i < INSTANCES; i++) {
    const calls = { cold: 0 };
    const app = await NestFactory.create(appModule(setup, redisUrl, calls), new ExpressAdapter(), { logger: false });
    await app.listen(0, '127.0.0.1');
    instances.push({ app, url: (await app.getUrl()).replace('[::1]', '127.0.0.1'), calls });
  }
  return instances;
}

function cannon(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(opts, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

async function coldBurst(instances: Instance[], round: number): Promise<number> {
  const path = `/cold?round=${round}`;
  const before = instances.map((i) => i.calls.cold);
  const results = await Promise.all(
    instances.map((i) => cannon({ url: i.url + path, connections: CONCURRENT, amount: CONCURRENT, timeout: 30 })),
  );
  for (const r of results) {
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`cold burst: ${r.non2xx} non-2xx, ${r.errors} errors`);
  }
  return instances.reduce((n, i, k) => n + i.calls.cold - before[k], 0);
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

/** Follower latency over the leader's (ms, p50 and p99) for one cold key on `services`; undefined if not 1 computation. */
async function followerOverhead(
  services: CacheService[],
  key: string,
): Promise<{ p50: number; p99: number } | undefined> {
  let computations = 0;
  const leaders: number[] = [];
  const followers: number[] = [];
  const start = performance.now();
  await Promise.all(
    services.flatMap((service) =>
      Array.from({ length: CONCURRENT }, async () => {
        let mine = false;
        await service.getOrStore(
          key,
          async () => {
            mine = true;
            computations++;
            await delay(HANDLER_MS);
            return PAYLOAD;
          },
          TTL,
        );
        (mine ? leaders : followers).push(performance.now() - start);
      }),
    ),
  );
  if (computations !== 1 || leaders.length === 0) return undefined;
  const leader = leaders[0];
  const over = followers.map((t) => t - leader);
  return { p50: percentile(over, 50), p99: percentile(over, 99) };
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

async function startRedis(): Promise<{ url: string; process: ChildProcess }> {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const deadline = Date.now() + 10_000;
  for (;;) {
    const up = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => (socket.destroy(), resolve(false)));
      socket.connect(port, '127.0.0.1');
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await delay(50);
  }
  return { url: `redis://127.0.0.1:${port}`, process: child };
}

async function main(): Promise<void> {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    console.log('bench/cache/cluster skipped: redis-server is not installed');
    return;
  }
  const redis = await startRedis();
  const setups: Setup[] = ['stock', 'instance', 'cluster'];
  const booted = {} as Record<Setup, Instance[]>;
  for (const setup of setups) booted[setup] = await boot(setup, redis.url);
  // let the subscribers of 'cluster' connect (they do so in the background at boot)
  await delay(500);
  try {
    // one unmeasured round each (JIT, connections)
    for (const setup of setups) await coldBurst(booted[setup], -1);
    const calls: Record<Setup, number[]> = { stock: [], instance: [], cluster: [] };
    const overP50: number[] = [];
    const overP99: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      for (const setup of setups) calls[setup].push(await coldBurst(booted[setup], round));
    }
    const clusterServices = booted.cluster.map((i) => i.app.get(CacheService));
    await followerOverhead(clusterServices, 'latency-warm-up');
    for (let round = 0; round < ROUNDS; round++) {
      const over = await followerOverhead(clusterServices, `latency-${round}`);
      if (over) {
        overP50.push(over.p50);
        overP99.push(over.p99);
      }
    }
    for (const setup of setups) {
      console.log(
        `cold burst ${INSTANCES} x ${CONCURRENT}: handler calls, ${setup}: median ${median(calls[setup])} (runs: [${calls[setup].join(', ')}])`,
      );
    }
    goal(
      `'cluster': 1 handler call for ${INSTANCES} instances x ${CONCURRENT} concurrent cold requests`,
      calls.cluster.every((n) => n === 1),
      `runs [${calls.cluster.join(', ')}]; 'instance' [${calls.instance.join(', ')}]; stock CacheInterceptor [${calls.stock.join(', ')}]`,
    );
    const p50 = overP50.length ? median(overP50) : NaN;
    const p99 = overP99.length ? median(overP99) : NaN;
    goal(
      'follower latency over the leader (getOrStore, 4 x 250), p50 <= +20 ms',
      p50 <= 20,
      `${p50.toFixed(1)} ms (runs: [${overP50.map((n) => n.toFixed(1)).join(', ')}])`,
    );
    goal(
      'follower latency over the leader (getOrStore, 4 x 250), p99 <= +20 ms',
      p99 <= 20,
      `${p99.toFixed(1)} ms (runs: [${overP99.map((n) => n.toFixed(1)).join(', ')}])`,
    );

    // Warm hits: the same key, in every L1.
    const services = {
      instance: booted.instance[0].app.get(CacheService),
      cluster: booted.cluster[0].app.get(CacheService),
    };
    const fn = () => PAYLOAD;
    for (const service of Object.values(services)) await service.getOrStore('warm-key', fn, TTL);
    const hits = (service: CacheService) => async () => {
      const start = process.hrtime.bigint();
      for (let i = 0; i < HIT_CALLS; i++) await service.getOrStore('warm-key', fn, TTL);
      return Number(process.hrtime.bigint() - start) / HIT_CALLS;
    };
    await hits(services.instance)();
    await hits(services.cluster)();
    // Short alternating slices: the shared machine's load drifts more within a long round than the figure differs.
    const inProcess = await compare(
      'warm hit, CacheService.getOrStore in process',
      'ns/hit',
      { name: "'instance'", run: hits(services.instance) },
      { name: "'cluster'", run: hits(services.cluster) },
      21,
    );
    const reqs = (instance: Instance) => async () => {
      const r = await cannon({ url: `${instance.url}/warm`, connections: 32, duration: HIT_SECONDS });
      if (r.non2xx > 0 || r.errors > 0) throw new Error(`warm: ${r.non2xx} non-2xx, ${r.errors} errors`);
      return r.requests.average;
    };
    await reqs(booted.instance[0])();
    await reqs(booted.cluster[0])();
    const http = await compare(
      'warm hit, @Cached route over loopback (Express)',
      'req/s',
      { name: "'instance'", run: reqs(booted.instance[0]) },
      { name: "'cluster'", run: reqs(booted.cluster[0]) },
    );
    goal(
      "no measurable cost of 'cluster' on a warm hit (within 5%)",
      inProcess.ratio <= 1.05 && http.ratio >= 0.95,
      `getOrStore ${inProcess.ratio.toFixed(2)}x the ns of 'instance'; route ${http.ratio.toFixed(2)}x its req/s`,
    );
    printPeakRss();
  } finally {
    for (const setup of setups) for (const i of booted[setup]) await i.app.close();
    redis.process.kill('SIGKILL');
  }
}

await main();
