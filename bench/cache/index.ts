/**
 * bench/cache: our @Cached (ResponseCacheInterceptor on cache-manager wrap) against the stock @nestjs/cache-manager
 * CacheInterceptor, on the same small app, on Express and on Fastify, over loopback with autocannon.
 *
 * - stampede: handler calls for 1,000 concurrent cold requests to one URL (goal: 1)
 * - hit throughput: req/s of a cached route (goal: ours >= 1.0x stock), after one unmeasured warm-up round of each
 *   contender (JIT); 7 rounds of 3 s, since single rounds on a shared machine vary by a third
 * - hit path cost in process, without HTTP: ns per cached hit through each interceptor's intercept(), as Nest built it
 *   (supplementary: the same comparison without the loopback and the server's noise)
 * - p99 of a STALE response vs a HIT (goal: about the same; STALE must not wait for the refresh)
 *
 * Rounds alternate baseline and ours (bench/harness.ts). autocannon runs in a worker thread so the load generator
 * does not share the servers' event loop.
 */
import 'reflect-metadata';
import { CacheInterceptor, CacheModule } from '@nestjs/cache-manager';
import {
  type CallHandler,
  Controller,
  Get,
  type INestApplication,
  Module,
  type NestInterceptor,
  type Type,
  UseInterceptors,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host.js';
import { ExpressAdapter } from '@nestjs/platform-express';
import { FastifyAdapter } from '@nestjs/platform-fastify';
import autocannon from 'autocannon';
import { Cached, ConcurrencyModule, ResponseCacheInterceptor } from 'nestjs-concurrency';
import { deepStrictEqual, strictEqual } from 'node:assert';
import { defer, lastValueFrom, of } from 'rxjs';
import { compare, gc, goal, printPeakRss } from '../harness.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const HIT_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const HIT_SECONDS = Number(process.env.BENCH_CACHE_SECONDS ?? 3);
const LATENCY_SECONDS = Number(process.env.BENCH_CACHE_SECONDS ?? 2);
const HIT_CALLS = 200_000;
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

interface BenchApp {
  module: Type;
  controller: Type;
}

function stockModule(bench: Bench): BenchApp {
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
  return { module: StockModule, controller: StockController };
}

function oursModule(bench: Bench): BenchApp {
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
  return { module: OursModule, controller: OursController };
}

type AdapterName = 'express' | 'fastify';

function create(adapter: AdapterName, module: Type): Promise<INestApplication> {
  return NestFactory.create(module, adapter === 'fastify' ? new FastifyAdapter() : new ExpressAdapter(), {
    logger: false,
  });
}

async function start(adapter: AdapterName, module: Type): Promise<{ app: INestApplication; url: string }> {
  const app = await create(adapter, module);
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

async function throughput(url: string, seconds: number): Promise<autocannon.Result> {
  const result = await cannon({ url, connections: 32, duration: seconds, workers: 1 });
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

interface HttpArgs {
  request: object;
  response: object;
  /** Headers the interceptor set through the adapter's setHeader. */
  sent: Record<string, string>;
}

/** A GET request and a response shaped like the adapter's, as far as the interceptors and the adapter read them. */
function httpArgs(adapter: AdapterName, url: string): HttpArgs {
  const sent: Record<string, string> = {};
  const headers = { host: '127.0.0.1', accept: 'application/json', 'user-agent': 'bench' };
  if (adapter === 'express') {
    const response = {
      set(name: string, value: string) {
        sent[name] = value;
        return response;
      },
    };
    return { request: { method: 'GET', url, originalUrl: url, headers }, response, sent };
  }
  // A Fastify reply (has `status`, so the adapter calls `header`), and a request with its `raw` IncomingMessage.
  const response = {
    status: () => response,
    header(name: string, value: string) {
      sent[name] = value;
      return response;
    },
  };
  return { request: { method: 'GET', url, headers, raw: { method: 'GET', url, headers } }, response, sent };
}

/**
 * One contender of the in-process hit path: the bench app booted with app.init() (not listening), the interceptor
 * instance Nest built for the controller's module, and a call that goes through intercept() with a new
 * ExecutionContextHost per call (as Nest makes one per request) and awaits the Observable's value.
 */
async function hitPathContender(adapter: AdapterName, app: BenchApp, bench: Bench, interceptorType: Type) {
  const nest = await create(adapter, app.module);
  await nest.init();
  const interceptor = nest.select(app.module).get<NestInterceptor>(interceptorType, { strict: true });
  const controller = nest.get<{ hit: () => unknown }>(app.controller);
  const handler = app.controller.prototype.hit as () => unknown;
  const { request, response, sent } = httpArgs(adapter, '/hit');
  const next: CallHandler = { handle: () => defer(() => of(controller.hit())) };
  const noop = () => undefined;
  const call = async (): Promise<unknown> => {
    const context = new ExecutionContextHost([request, response, noop], app.controller, handler);
    return lastValueFrom(await interceptor.intercept(context, next));
  };

  await call(); // the miss: the handler runs and the value is stored (the stock interceptor stores it in a tap)
  await delay(20);
  const value = await call();
  deepStrictEqual(value, PAYLOAD, `${interceptorType.name}: a hit returns the payload`);
  strictEqual(bench.calls.hit, 1, `${interceptorType.name}: the handler ran once`);
  strictEqual(sent['X-Cache'], 'HIT', `${interceptorType.name}: X-Cache of a hit`);

  const run = async (): Promise<number> => {
    gc();
    const start = process.hrtime.bigint();
    for (let i = 0; i < HIT_CALLS; i++) await call();
    const ns = Number(process.hrtime.bigint() - start) / HIT_CALLS;
    return ns;
  };
  const close = async (): Promise<void> => {
    strictEqual(bench.calls.hit, 1, `${interceptorType.name}: every measured call was a hit`);
    await nest.close();
  };
  return { run, close };
}

async function hitPath(adapter: AdapterName): Promise<void> {
  const stockBench: Bench = { calls: {} };
  const oursBench: Bench = { calls: {} };
  const stock = await hitPathContender(adapter, stockModule(stockBench), stockBench, CacheInterceptor);
  const ours = await hitPathContender(adapter, oursModule(oursBench), oursBench, ResponseCacheInterceptor);
  // Unmeasured warm-up round of each (JIT).
  await stock.run();
  await ours.run();
  const cost = await compare(
    `hit path in process, intercept() of a cached GET, ${HIT_CALLS} calls a round (${adapter})`,
    'ns/hit',
    { name: 'stock CacheInterceptor', run: stock.run },
    { name: 'ResponseCacheInterceptor', run: ours.run },
    HIT_ROUNDS,
  );
  goal(`hit path cost <= stock (${adapter}, supplementary)`, cost.ratio <= 1, `${cost.ratio.toFixed(2)}x`);
  await stock.close();
  await ours.close();
}

for (const adapter of ADAPTERS) {
  console.log(`\n## in-process hit path (${adapter})`);
  await hitPath(adapter);
}
for (const adapter of ADAPTERS) {
  console.log(`\n## ${adapter}`);
  const stockBench: Bench = { calls: {} };
  const oursBench: Bench = { calls: {} };
  const stock = await start(adapter, stockModule(stockBench).module);
  const ours = await start(adapter, oursModule(oursBench).module);

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
  // Unmeasured warm-up round of each contender: the first seconds under load run partly unoptimized code.
  await throughput(`${stock.url}/hit`, HIT_SECONDS);
  await throughput(`${ours.url}/hit`, HIT_SECONDS);
  const hits = await compare(
    `cached-hit throughput (${adapter}, ${HIT_ROUNDS} rounds of ${HIT_SECONDS} s after a warm-up round)`,
    'req/s',
    {
      name: 'stock CacheInterceptor',
      run: async () => (await throughput(`${stock.url}/hit`, HIT_SECONDS)).requests.average,
    },
    { name: '@Cached', run: async () => (await throughput(`${ours.url}/hit`, HIT_SECONDS)).requests.average },
    HIT_ROUNDS,
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
    { name: 'HIT', run: async () => (await throughput(`${ours.url}/hit`, LATENCY_SECONDS)).latency.p99 },
    { name: 'STALE', run: async () => (await throughput(`${ours.url}/stale`, LATENCY_SECONDS)).latency.p99 },
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
