/**
 * bench/cache/methods: a `@Cached` provider method against the two ways people memoize a service method by hand, in
 * the same run and process:
 *
 * - hit cost: ns per call of a cached method with one argument (an id), for a warm key, against a hand-written
 *   `Map` memo (the floor) and against cache-manager's `wrap(key, fn)` on a `createCache()` (goal: <= 1.5x wrap).
 *   200,000 calls a round, awaited one after the other, 5 rounds; rounds alternate the contenders.
 * - stampede: method executions for 1,000 concurrent calls with equal arguments on a cold key (goal: 1).
 */
import 'reflect-metadata';
import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { createCache } from 'cache-manager';
import { Cached, ConcurrencyModule } from 'nestjs-concurrency';
import { strictEqual } from 'node:assert';
import { compare, gc, goal, printPeakRss } from '../../harness.js';

const CALLS = Number(process.env.BENCH_METHOD_CALLS ?? 200_000);
const STAMPEDE = 1000;
const KEYS = 100;
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let executions = 0;
const load = async (id: number) => {
  executions++;
  await delay(20);
  return { id, name: `product ${id}`, price: id * 3 };
};

@Injectable()
class Products {
  @Cached({ ttl: 600_000 })
  async find(id: number): Promise<{ id: number; name: string; price: number }> {
    return load(id);
  }
}

async function perCall(fn: (id: number) => Promise<unknown>): Promise<number> {
  gc();
  const start = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) await fn(i % KEYS);
  return Number(process.hrtime.bigint() - start) / CALLS;
}

async function main(): Promise<void> {
  const moduleRef = await Test.createTestingModule({
    imports: [ConcurrencyModule.forRoot({ cache: { maxEntries: 10_000 } })],
    providers: [Products],
  }).compile();
  await moduleRef.init();
  const products = moduleRef.get(Products);

  const memo = new Map<string, Promise<unknown>>();
  const memoFind = (id: number) => {
    const key = `Products.find:${id}`;
    let hit = memo.get(key);
    if (hit === undefined) memo.set(key, (hit = load(id)));
    return hit;
  };
  const wrapCache = createCache({ ttl: 600_000 });
  const wrapFind = (id: number) => wrapCache.wrap(`Products.find:${id}`, () => load(id));

  // Warm every key in each contender (and the JIT).
  for (const fn of [memoFind, wrapFind, (id: number) => products.find(id)]) {
    await Promise.all(Array.from({ length: KEYS }, (_, id) => fn(id)));
    await perCall(fn);
  }

  const floor = await compare(
    'method hit cost',
    'ns/call',
    { name: 'Map memo', run: () => perCall(memoFind) },
    { name: '@Cached method', run: () => perCall((id) => products.find(id)) },
  );
  const wrap = await compare(
    'method hit cost',
    'ns/call',
    { name: 'cache-manager wrap', run: () => perCall(wrapFind) },
    { name: '@Cached method', run: () => perCall((id) => products.find(id)) },
  );
  goal(
    'hit cost <= 1.5x cache-manager wrap',
    wrap.ratio <= 1.5,
    `${wrap.ratio.toFixed(2)}x (vs Map memo ${floor.ratio.toFixed(2)}x)`,
  );

  executions = 0;
  const values = await Promise.all(Array.from({ length: STAMPEDE }, () => products.find(1_000_000)));
  strictEqual(new Set(values).size, 1);
  goal(`stampede of ${STAMPEDE} concurrent calls -> 1 execution`, executions === 1, `${executions} execution(s)`);

  await moduleRef.close();
  printPeakRss();
}

await main();
