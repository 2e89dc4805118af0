/**
 * bench/durable: durable tasks (DurableSupervisor + @TaskHandler) against raw BullMQ (Queue.add + Worker) and
 * @nestjs/bullmq (@Processor + WorkerHost, Queue.add), on no-op tasks, same concurrency (16), same Redis, same
 * retention of finished jobs (ours keeps 24 h / 10,000 per name: the baselines get the same removeOnComplete).
 *
 * (1) throughput: TASKS tasks added 100 at a time while one worker (concurrency 16) runs them; tasks/s from the first
 *     add to the last completion. Goal: ours >= 0.9x raw BullMQ.
 * (2) start-to-handler latency: LATENCY_TASKS tasks one after the other (each added when the previous one ran), from
 *     just before add/startChild to the handler's first line; p50 and p99. Goal: <= 1.2x raw BullMQ's.
 * (3) 10,000 tasks over two worker processes (bench/durable/worker.js), one SIGKILLed half-way: how many completed,
 *     how many ran twice (at least once: the tasks the killed process had started are run again).
 *
 * Needs redis-server on the PATH (started here on a free port, without persistence) or REDIS_URL.
 * DURABLE_PARTS=throughput,latency,kill picks parts (default: all); DURABLE_TASKS, DURABLE_LATENCY_TASKS, BENCH_ROUNDS.
 */
import 'reflect-metadata';
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { BullModule, InjectQueue, Processor, WorkerHost } from '@nestjs/bullmq';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { ConcurrencyModule, DurableSupervisor, TaskHandler } from 'nestjs-concurrency';
import { compare, goal, median, printPeakRss } from '../harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const TASKS = Number(process.env.DURABLE_TASKS ?? 10_000);
const LATENCY_TASKS = Number(process.env.DURABLE_LATENCY_TASKS ?? 500);
const KILL_TASKS = 10_000;
const CONCURRENCY = 16;
const BATCH = 100;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const KEEP = { age: 24 * 3600, count: 10_000 };

let round = 0;
const freshPrefix = () => `bench-${process.pid}-${++round}`;

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

async function startRedis(): Promise<{ url: string; stop: () => void }> {
  if (process.env.REDIS_URL) return { url: process.env.REDIS_URL, stop: () => undefined };
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {
      stdio: 'ignore',
    },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; ; i++) {
    const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    probe.on('error', () => undefined);
    try {
      await probe.connect();
      await probe.ping();
      probe.disconnect();
      break;
    } catch {
      probe.disconnect();
      if (i > 100) throw new Error('redis-server did not start');
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  return { url, stop: () => child.kill('SIGKILL') };
}

/** One contender: `add()` starts a task; `onRun` is called by its handler; `close()` shuts it down. */
interface Engine {
  add(payload: { i: number; t: number }): Promise<unknown>;
  close(): Promise<void>;
}
type OnRun = (payload: { i: number; t: number }) => void;
type Flavour = 'raw' | 'nestjs' | 'ours';

async function rawEngine(url: string, onRun: OnRun): Promise<Engine> {
  const prefix = freshPrefix();
  const queue = new Queue('noop', { connection: { url }, prefix });
  const worker = new Worker(
    'noop',
    async (job) => {
      onRun(job.data);
    },
    { connection: { url, maxRetriesPerRequest: null }, prefix, concurrency: CONCURRENCY },
  );
  await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()]);
  return {
    add: (payload) => queue.add('noop', payload, { removeOnComplete: KEEP, removeOnFail: KEEP }),
    close: async () => {
      await worker.close();
      await queue.close();
    },
  };
}

async function nestjsEngine(url: string, onRun: OnRun): Promise<Engine> {
  const prefix = freshPrefix();
  @Processor('noop', { concurrency: CONCURRENCY })
  class NoopProcessor extends WorkerHost {
    async process(job: { data: { i: number; t: number } }) {
      onRun(job.data);
    }
  }
  @Injectable()
  class Producer {
    constructor(@InjectQueue('noop') readonly queue: Queue) {}
  }
  @Module({
    imports: [BullModule.forRoot({ connection: { url }, prefix }), BullModule.registerQueue({ name: 'noop' })],
    providers: [NoopProcessor, Producer],
  })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const queue = app.get(Producer).queue;
  await queue.waitUntilReady();
  return {
    add: (payload) => queue.add('noop', payload, { removeOnComplete: KEEP, removeOnFail: KEEP }),
    close: () => app.close(),
  };
}

async function oursEngine(url: string, onRun: OnRun): Promise<Engine> {
  @Injectable()
  class Handlers {
    @TaskHandler('noop')
    noop(payload: { i: number; t: number }) {
      onRun(payload);
    }
  }
  @Module({
    imports: [
      ConcurrencyModule.forRoot({ durable: { connection: url, prefix: freshPrefix(), concurrency: CONCURRENCY } }),
    ],
    providers: [Handlers],
  })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false });
  const supervisor = app.get(DurableSupervisor);
  await supervisor.startChild('noop', { i: -1, t: 0 }); // connects the producer side
  return {
    add: (payload) => supervisor.startChild('noop', payload),
    close: () => app.close(),
  };
}

const engines: Record<Flavour, (url: string, onRun: OnRun) => Promise<Engine>> = {
  raw: rawEngine,
  nestjs: nestjsEngine,
  ours: oursEngine,
};

/** tasks/s: TASKS tasks added BATCH at a time, from the first add to the last handler call. */
async function throughput(flavour: Flavour, url: string): Promise<number> {
  let ran = 0;
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const engine = await engines[flavour](url, (p) => {
    if (p.i >= 0 && ++ran === TASKS) done();
  });
  const started = performance.now();
  for (let i = 0; i < TASKS; i += BATCH) {
    const adds: Promise<unknown>[] = [];
    for (let k = i; k < Math.min(TASKS, i + BATCH); k++) adds.push(engine.add({ i: k, t: 0 }));
    await Promise.all(adds);
  }
  await finished;
  const seconds = (performance.now() - started) / 1000;
  await engine.close();
  return TASKS / seconds;
}

/** Start-to-handler latencies (ms) of LATENCY_TASKS tasks, one at a time. */
async function latencies(flavour: Flavour, url: string): Promise<number[]> {
  const out: number[] = [];
  let next!: () => void;
  const engine = await engines[flavour](url, (p) => {
    if (p.i < 0) return;
    out.push(performance.now() - p.t);
    next();
  });
  for (let i = 0; i < LATENCY_TASKS; i++) {
    const ran = new Promise<void>((resolve) => (next = resolve));
    await engine.add({ i, t: performance.now() });
    await ran;
  }
  await engine.close();
  return out;
}

const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
};

function spawnWorker(url: string, prefix: string, name: string): ChildProcess {
  return spawn(process.execPath, [join(here, 'worker.js')], {
    env: { ...process.env, REDIS_URL: url, PREFIX: prefix, INSTANCE: name },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** 10,000 tasks over two worker processes, one SIGKILLed half-way. */
async function killedWorker(url: string): Promise<{ completed: number; twice: number; ms: number }> {
  const prefix = freshPrefix();
  @Module({ imports: [ConcurrencyModule.forRoot({ durable: { connection: url, prefix, workers: false } })] })
  class ProducerModule {}
  const app = await NestFactory.createApplicationContext(ProducerModule, { logger: false });
  const supervisor = app.get(DurableSupervisor);
  const redis = new Redis(url);
  const runsKey = `${prefix}:bench-runs`;
  const doneKey = `${prefix}:bench-done`;
  const started = performance.now();
  const a = spawnWorker(url, prefix, 'a');
  const b = spawnWorker(url, prefix, 'b');
  for (let i = 0; i < KILL_TASKS; i += BATCH) {
    const adds: Promise<unknown>[] = [];
    for (let k = i; k < Math.min(KILL_TASKS, i + BATCH); k++) adds.push(supervisor.startChild('chunk', { i: k }));
    await Promise.all(adds);
  }
  while (Number(await redis.scard(doneKey)) < KILL_TASKS / 2) await new Promise((r) => setTimeout(r, 10));
  a.kill('SIGKILL');
  const deadline = Date.now() + 120_000;
  while (Number(await redis.scard(doneKey)) < KILL_TASKS && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  const ms = performance.now() - started;
  const completed = Number(await redis.scard(doneKey));
  const runs = await redis.hvals(runsKey);
  const twice = runs.filter((n) => Number(n) > 1).length;
  b.kill('SIGTERM');
  redis.disconnect();
  await app.close();
  return { completed, twice, ms };
}

const parts = new Set((process.env.DURABLE_PARTS ?? 'throughput,latency,kill').split(','));
const { url, stop } = await startRedis();
try {
  if (parts.has('throughput')) await throughputs();
  if (parts.has('latency')) await latency();
  if (parts.has('kill')) await kill();
  printPeakRss();
} finally {
  stop();
}

async function throughputs() {
  const rawVsOurs = await compare(
    `throughput, ${TASKS} no-op tasks, concurrency ${CONCURRENCY}`,
    'tasks/s',
    { name: 'raw BullMQ', run: () => throughput('raw', url) },
    { name: 'ours', run: () => throughput('ours', url) },
    ROUNDS,
  );
  const nestVsOurs = await compare(
    `throughput, ${TASKS} no-op tasks, concurrency ${CONCURRENCY}`,
    'tasks/s',
    { name: '@nestjs/bullmq', run: () => throughput('nestjs', url) },
    { name: 'ours', run: () => throughput('ours', url) },
    ROUNDS,
  );
  goal('throughput >= 0.9x raw BullMQ', rawVsOurs.ratio >= 0.9, `${rawVsOurs.ratio.toFixed(2)}x`);
  console.log(`(ours vs @nestjs/bullmq: ${nestVsOurs.ratio.toFixed(2)}x)`);
}

async function latency() {
  const lat: Record<Flavour, { p50: number[]; p99: number[] }> = {
    raw: { p50: [], p99: [] },
    nestjs: { p50: [], p99: [] },
    ours: { p50: [], p99: [] },
  };
  for (let r = 0; r < ROUNDS; r++) {
    for (const flavour of ['raw', 'nestjs', 'ours'] as const) {
      const values = await latencies(flavour, url);
      lat[flavour].p50.push(percentile(values, 50));
      lat[flavour].p99.push(percentile(values, 99));
    }
  }
  const m = (f: Flavour, p: 'p50' | 'p99') => median(lat[f][p]);
  for (const flavour of ['raw', 'nestjs', 'ours'] as const) {
    console.log(
      `start-to-handler latency, ${LATENCY_TASKS} tasks one at a time, ${flavour}: p50 ${m(flavour, 'p50').toFixed(2)} ms, p99 ${m(flavour, 'p99').toFixed(2)} ms` +
        `  (medians of ${ROUNDS} rounds; p50 runs [${lat[flavour].p50.map((v) => v.toFixed(2)).join(', ')}], p99 runs [${lat[flavour].p99.map((v) => v.toFixed(2)).join(', ')}])`,
    );
  }
  const p50 = m('ours', 'p50') / m('raw', 'p50');
  const p99 = m('ours', 'p99') / m('raw', 'p99');
  goal('latency p50 <= 1.2x raw BullMQ', p50 <= 1.2, `${p50.toFixed(2)}x`);
  goal('latency p99 <= 1.2x raw BullMQ', p99 <= 1.2, `${p99.toFixed(2)}x`);
}

async function kill() {
  const killed = await killedWorker(url);
  console.log(
    `${KILL_TASKS} tasks, 2 worker processes, one SIGKILLed half-way: ${killed.completed} completed, ` +
      `${killed.twice} ran twice, ${(killed.ms / 1000).toFixed(1)} s in all`,
  );
  goal(`all ${KILL_TASKS} completed with one worker SIGKILLed`, killed.completed === KILL_TASKS, `${killed.completed}`);
}
