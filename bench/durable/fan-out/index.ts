/**
 * bench/durable/fan-out: durable map (DurableSupervisor.map over @TaskHandler) against the same work done with BullMQ
 * flows by hand (FlowProducer: one parent, one child per input; the parent runs once every child completed), on
 * no-op items, two worker instances of concurrency 16 each, same Redis.
 *
 * (1) throughput: ITEMS items (default 10,000) from the call until every result is in the caller's hands; items/s,
 *     median of BENCH_ROUNDS rounds. Goal: ours >= 0.9x the flow.
 * (2) the caller's memory while storing MEMORY_ITEMS inputs (default 100,000) from a generator with batch() (nothing
 *     runs: an API-only instance), as heap used after GC, growth against before; and the same for 10x fewer inputs.
 *
 * Needs redis-server on the PATH (started here on a free port, without persistence) or REDIS_URL.
 */
import 'reflect-metadata';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Injectable, Module, type INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FlowProducer, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { ConcurrencyModule, DurableSupervisor, TaskHandler } from 'nestjs-concurrency';
import { gc, goal, median, printPeakRss } from '../../harness.js';

const ITEMS = Number(process.env.ITEMS ?? 10_000);
const MEMORY_ITEMS = Number(process.env.MEMORY_ITEMS ?? 100_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENCY = 16;
let round = 0;
const freshPrefix = () => `bench-fan-${process.pid}-${++round}`;

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

async function startRedis(): Promise<{ url: string; child?: ChildProcess }> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL };
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = spawn('redis-server', args, { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      return { url, child };
    } catch {
      probe.disconnect();
      if (i > 100) throw new Error('redis-server did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

@Injectable()
class Noop {
  @TaskHandler('noop', { concurrency: CONCURRENCY })
  noop(n: number) {
    return n;
  }
}

async function app(url: string, prefix: string, workers: boolean): Promise<INestApplicationContext> {
  @Module({
    imports: [ConcurrencyModule.forRoot({ durable: { connection: url, prefix, workers } })],
    providers: [Noop],
  })
  class BenchModule {}
  return NestFactory.createApplicationContext(BenchModule, { logger: ['error'] });
}

/** Ours: two worker instances and a caller; ms from map() to the results. */
async function ours(url: string): Promise<number> {
  const prefix = freshPrefix();
  const instances = await Promise.all([app(url, prefix, true), app(url, prefix, true), app(url, prefix, false)]);
  const supervisor = instances[2]!.get(DurableSupervisor);
  const inputs = Array.from({ length: ITEMS }, (_, i) => i);
  const started = performance.now();
  const results = await supervisor.map<number, number>('noop', inputs);
  const ms = performance.now() - started;
  if (results.length !== ITEMS || results[ITEMS - 1] !== ITEMS - 1) throw new Error('wrong results');
  await Promise.all(instances.map((i) => i.close()));
  return ms;
}

/** By hand: a FlowProducer parent with ITEMS children; two workers for the children, one for the parent. */
async function flow(url: string): Promise<number> {
  const prefix = freshPrefix();
  const connection = { url, maxRetriesPerRequest: null };
  const children = [0, 1].map(
    () => new Worker('noop', async (job) => job.data as number, { connection, prefix, concurrency: CONCURRENCY }),
  );
  let done!: (values: number[]) => void;
  const finished = new Promise<number[]>((resolve) => (done = resolve));
  const parent = new Worker(
    'parent',
    async (job) => {
      // The results in input order, as map() gives them.
      const values = await job.getChildrenValues<number>();
      const ordered: number[] = Array.from({ length: ITEMS });
      for (const [key, value] of Object.entries(values)) ordered[Number(key.slice(key.lastIndexOf(':c') + 2))] = value;
      done(ordered);
    },
    { connection, prefix },
  );
  const producer = new FlowProducer({ connection, prefix });
  const started = performance.now();
  await producer.add({
    name: 'parent',
    queueName: 'parent',
    children: Array.from({ length: ITEMS }, (_, i) => ({
      name: 'noop',
      queueName: 'noop',
      data: i,
      opts: { jobId: `c${i}`, removeOnComplete: true },
    })),
  });
  const values = await finished;
  const ms = performance.now() - started;
  if (values.length !== ITEMS) throw new Error('wrong results');
  await Promise.all([...children, parent].map((w) => w.close()));
  await producer.close();
  return ms;
}

/** Peak live heap growth (MB, sampled after a full GC each second) of the caller while batch() stores `count` inputs from a generator. */
async function storeMemory(url: string, count: number): Promise<{ mb: number; ms: number }> {
  const prefix = freshPrefix();
  const caller = await app(url, prefix, false);
  const supervisor = caller.get(DurableSupervisor);
  function* inputs() {
    for (let i = 0; i < count; i++) yield { i, name: `item-${i}` };
  }
  gc();
  const before = process.memoryUsage().heapUsed;
  let peak = before;
  // The live heap (after a full GC) once a second while storing: what the caller holds, not its garbage.
  const sampler = setInterval(() => {
    gc();
    peak = Math.max(peak, process.memoryUsage().heapUsed);
  }, 1000);
  const started = performance.now();
  await supervisor.batch('noop', inputs());
  const ms = performance.now() - started;
  clearInterval(sampler);
  await caller.close();
  return { mb: (peak - before) / 2 ** 20, ms };
}

const redis = await startRedis();
try {
  const parts = (process.env.FANOUT_PARTS ?? 'throughput,memory').split(',');
  const oursMs: number[] = [];
  const flowMs: number[] = [];
  for (let r = 0; r < (parts.includes('throughput') ? ROUNDS : 0); r++) {
    flowMs.push(await flow(redis.url));
    oursMs.push(await ours(redis.url));
  }
  if (parts.includes('throughput')) throughput(oursMs, flowMs);
  if (parts.includes('memory')) await memory();
  printPeakRss();
} finally {
  redis.child?.kill('SIGKILL');
}
process.exit(process.exitCode ?? 0);

function throughput(oursMs: number[], flowMs: number[]): void {
  const rate = (ms: number) => (ITEMS / ms) * 1000;
  const oursRate = rate(median(oursMs));
  const flowRate = rate(median(flowMs));
  console.log(
    `(1) ${ITEMS} no-op items over 2 worker instances (concurrency ${CONCURRENCY} each), median of ${ROUNDS}:`,
  );
  console.log(
    `    FlowProducer by hand: ${flowRate.toFixed(0)} items/s (${flowMs.map((m) => m.toFixed(0)).join(', ')} ms)`,
  );
  console.log(
    `    DurableSupervisor.map: ${oursRate.toFixed(0)} items/s (${oursMs.map((m) => m.toFixed(0)).join(', ')} ms)`,
  );
  const ratio = oursRate / flowRate;
  goal('durable map throughput >= 0.9x FlowProducer', ratio >= 0.9, `${ratio.toFixed(2)}x`);
}

async function memory(): Promise<void> {
  const small = await storeMemory(redis.url, MEMORY_ITEMS / 10);
  const large = await storeMemory(redis.url, MEMORY_ITEMS);
  console.log(`(2) caller heap growth while storing from a generator (peak, after GC before):`);
  console.log(`    ${MEMORY_ITEMS / 10} inputs: ${small.mb.toFixed(1)} MB in ${small.ms.toFixed(0)} ms`);
  console.log(`    ${MEMORY_ITEMS} inputs: ${large.mb.toFixed(1)} MB in ${large.ms.toFixed(0)} ms`);
  goal(
    'caller memory flat (100k inputs <= 2x the growth of 10k, + 8 MB)',
    large.mb <= 2 * small.mb + 8,
    `${large.mb.toFixed(1)} MB vs ${small.mb.toFixed(1)} MB`,
  );
}
