/**
 * bench/cache: our @Cached (ResponseCacheInterceptor on cache-manager wrap) against the stock @nestjs/cache-manager
 * CacheInterceptor, on the same small app, on Express and on Fastify, over loopback with autocannon.
 *
 * - stampede: handler calls for 1,000 concurrent cold requests to one URL (goal: 1)
 * - hit throughput: req/s of a cached route (goal: ours >= 1.0x stock)
 * - p99 of a STALE response vs a HIT (goal: about the same; STALE must not wait for the refresh)
 *
 * Rounds alternate baseline and ours (bench/harness.ts). autocannon runs in a worker thread so the load generator
 * does not share the servers' event loop.
 */
import 'reflect-metadata';
import { CacheInterceptor, CacheModule } from '@nestjs/cache-manager';
import { Controller, Get, type INestApplication, Module, type Type, UseInterceptors } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import autocannon from 'autocannon';
import { Cached, ConcurrencyModule } from 'nestjs-concurrency';
import { compare, goal, printPeakRss } from '../harness.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const HIT_SECONDS = Number(process.env.BENCH_CACHE_SECONDS ?? 2);
const STAMPEDE = 1000;
const TTL = 60_000;
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Bench {
  calls: Record<string, number>;
}

function bump(bench: Bench, name: string): number {
  bench.calls[name] = (bench.calls[name] ?? 0) + 1;
  return bench.calls[name];
}

const PAYLOAD = { items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item ${i}`, price: i * 3 })) };

function stockModule(bench: Bench): Type {
  @Controller()
  @UseInterceptors(CacheInterceptor)
  class StockController {
    @Get('stampede')
    async stampede() {
      bump(bench, 'stampede');
      await delay(50);
      return PAYLOAD;
    }

    @Get('hit')
    hit() {
      bump(bench, 'hit');
      return PAYLOAD;
    }
  }

  @Module({ imports: [CacheModule.register({ ttl: TTL })], controllers: [StockController] })
  class StockModule {}
  return StockModule;
}

function oursModule(bench: Bench): Type {
  let first = true;

  @Controller()
  class OursController {
    @Get('stampede')
    @Cached({ ttl: TTL })
    async stampede() {
      bump(bench, 'stampede');
      await delay(50);
      return PAYLOAD;
    }

    @Get('hit')
    @Cached({ ttl: TTL })
    hit() {
      bump(bench, 'hit');
      return PAYLOAD;
    }

    // Stale after 1 ms; every refresh takes 10 s, so during a measurement nearly every response is STALE.
    @Get('stale')
    @Cached({ ttl: 1, staleWhileRevalidate: TTL })
    async stale() {
      bump(bench, 'stale');
      if (!first) await delay(10_000);
      first = false;
      return PAYLOAD;
    }
  }

  @Module({ imports: [ConcurrencyModule.forRoot({ cache: { ttl: TTL } })], controllers: [OursController] })
  class OursModule {}
  return OursModule;
}

async function start(adapter: 'express' | 'fastify', module: Type): Promise<{ app: INestApplication; url: string }> {
  const app = await NestFactory.create(module, adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
    logger: false,
  });
  await app.listen(0, '127.0.0.1');
  return { app, url: (await app.getUrl()).replace('[::1]', '127.0.0.1') };
}

function cannon(opts: autocannon.Options): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    autocannon(opts, (err, result) => (err ? reject(err) : resolve(result)));
  });
}

async function stampede(base: string, bench: Bench, round: number): Promise<number> {
  const path = `/stampede?round=${round}`;
  const before = bench.calls.stampede ?? 0;
  const result = await cannon({ url: base + path, connections: STAMPEDE, amount: STAMPEDE, timeout: 30 });
  if (result.non2xx > 0 || result.errors > 0)
    throw new Error(`stampede: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return (bench.calls.stampede ?? 0) - before;
}

async function throughput(url: string): Promise<autocannon.Result> {
  const result = await cannon({ url, connections: 32, duration: HIT_SECONDS, workers: 1 });
  if (result.non2xx > 0 || result.errors > 0)
    throw new Error(`${url}: ${result.non2xx} non-2xx, ${result.errors} errors`);
  return result;
}

async function cacheHeader(url: string): Promise<string | null> {
  const res = await fetch(url);
  await res.arrayBuffer();
  return res.headers.get('x-cache');
}

const ADAPTERS = (process.env.BENCH_CACHE_ADAPTERS ?? 'express,fastify').split(',') as Array<'express' | 'fastify'>;
for (const adapter of ADAPTERS) {
  console.log(`\n## ${adapter}`);
  const stockBench: Bench = { calls: {} };
  const oursBench: Bench = { calls: {} };
  const stock = await start(adapter, stockModule(stockBench));
  const ours = await start(adapter, oursModule(oursBench));

  let round = 0;
  const calls = await compare(
    `stampede handler calls, ${STAMPEDE} concurrent cold requests (${adapter})`,
    'calls',
    { name: 'stock CacheInterceptor', run: () => stampede(stock.url, stockBench, round) },
    { name: '@Cached', run: () => stampede(ours.url, oursBench, round++) },
    ROUNDS,
  );
  goal(
    `stampede calls = 1 (${adapter})`,
    calls.ours.median === 1,
    `${calls.ours.median} (stock ${calls.baseline.median})`,
  );

  await cacheHeader(`${stock.url}/hit`);
  await cacheHeader(`${ours.url}/hit`);
  const hits = await compare(
    `cached-hit throughput (${adapter})`,
    'req/s',
    { name: 'stock CacheInterceptor', run: async () => (await throughput(`${stock.url}/hit`)).requests.average },
    { name: '@Cached', run: async () => (await throughput(`${ours.url}/hit`)).requests.average },
    ROUNDS,
  );
  goal(`hit throughput >= 1.0x stock (${adapter})`, hits.ratio >= 1, `${hits.ratio.toFixed(2)}x`);
  if (stockBench.calls.hit !== 1 || oursBench.calls.hit !== 1) {
    console.log(`  (handler calls on the hit route: stock ${stockBench.calls.hit}, ours ${oursBench.calls.hit})`);
  }

  await cacheHeader(`${ours.url}/stale`);
  await delay(5);
  const header = await cacheHeader(`${ours.url}/stale`);
  const latency = await compare(
    `p99 latency, STALE vs HIT (${adapter})`,
    'ms',
    { name: 'HIT', run: async () => (await throughput(`${ours.url}/hit`)).latency.p99 },
    { name: 'STALE', run: async () => (await throughput(`${ours.url}/stale`)).latency.p99 },
    ROUNDS,
  );
  goal(
    `STALE p99 about a HIT's, not a refresh's 10 s (${adapter})`,
    header === 'STALE' && latency.ours.median <= Math.max(2 * latency.baseline.median, latency.baseline.median + 5),
    `${latency.ours.median} ms vs ${latency.baseline.median} ms (first stale header: ${header}, refreshes started: ${(oursBench.calls.stale ?? 1) - 1})`,
  );

  await stock.app.close();
  await ours.app.close();
}
printPeakRss();
process.exit(0);
