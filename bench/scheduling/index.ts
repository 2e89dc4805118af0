/**
 * bench/scheduling: (1) fixed-rate @Interval(100) over 100 ticks: mean drift of each tick from the ideal schedule
 * (first tick + n x 100 ms), ours against @nestjs/schedule's @Interval(100), alternating in one process;
 * (2) 10,000 registered interval jobs (every 60 s): boot time (create + init) and idle CPU over 3 s.
 *
 * To keep `npm run bench` short the drift comparison runs 3 rounds (10 s each per contender, after a short warm-up of both)
 * and the 10,000-job one 3 rounds; BENCH_ROUNDS / SCHEDULING_TICKS override.
 */
import 'reflect-metadata';
import { Injectable, Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Interval as NestInterval, ScheduleModule } from '@nestjs/schedule';
import { ConcurrencyModule, InMemoryJobLock, Interval } from 'nestjs-concurrency';
import { compare, gc, goal, printPeakRss } from '../harness.js';

const TICKS = Number(process.env.SCHEDULING_TICKS ?? 100);
const PERIOD = 100;
const JOBS = 10_000;
const IDLE_MS = 3000;
const DRIFT_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BOOT_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);

type Flavour = 'ours' | 'nestjs' | 'policies';
const moduleOf = (flavour: Flavour) =>
  flavour === 'nestjs'
    ? ScheduleModule.forRoot()
    : ConcurrencyModule.forRoot(flavour === 'policies' ? { jobs: { lock: new InMemoryJobLock() } } : {});
/** The issue 25 policies on one job: the catch-up and overlap code paths, with the lock they need. */
const POLICIES = {
  lock: true,
  overlap: 'buffer-one',
  catchUp: { window: 60_000, mode: 'all' },
  pauseAfterFailures: 3,
} as const;

/** Mean |actual - ideal| in ms over `ticks` ticks of one @Interval(100). */
async function drift(flavour: Flavour, ticks = TICKS): Promise<number> {
  const times: number[] = [];
  let done!: () => void;
  const finished = new Promise<void>((resolve) => (done = resolve));
  const decorate =
    flavour === 'ours' ? Interval(PERIOD) : flavour === 'policies' ? Interval(PERIOD, POLICIES) : NestInterval(PERIOD);
  @Injectable()
  class Ticker {
    tick() {
      times.push(performance.now());
      if (times.length === ticks) done();
    }
  }
  decorate(Ticker.prototype, 'tick', Object.getOwnPropertyDescriptor(Ticker.prototype, 'tick')!);
  @Module({ imports: [moduleOf(flavour)], providers: [Ticker] })
  class AppModule {}
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
  await app.init();
  await finished;
  await app.close();
  let sum = 0;
  for (let k = 0; k < ticks; k++) sum += Math.abs(times[k] - (times[0] + k * PERIOD));
  gc();
  return sum / ticks;
}

/** A provider with JOBS interval methods, decorated the way the flavour's decorator does it. */
function manyJobs(flavour: Flavour): Type {
  @Injectable()
  class Many {}
  const proto = Many.prototype as unknown as Record<string, unknown>;
  for (let i = 0; i < JOBS; i++) {
    const key = `job${i}`;
    proto[key] = function () {};
    const decorate = flavour === 'ours' ? Interval(`job-${i}`, 60_000) : NestInterval(`job-${i}`, 60_000);
    decorate(proto, key, Object.getOwnPropertyDescriptor(proto, key)!);
  }
  return Many;
}

const providers = { ours: manyJobs('ours'), nestjs: manyJobs('nestjs') };
const idle: Record<'ours' | 'nestjs', number[]> = { ours: [], nestjs: [] };

async function boot(flavour: 'ours' | 'nestjs'): Promise<number> {
  @Module({ imports: [moduleOf(flavour)], providers: [providers[flavour]] })
  class AppModule {}
  gc();
  const started = performance.now();
  const app = await NestFactory.createApplicationContext(AppModule, { logger: false, abortOnError: false });
  await app.init();
  const bootMs = performance.now() - started;
  // Idle: nothing is due for 60 s; what does keeping 10,000 jobs armed cost? (Boot garbage collected first.)
  gc();
  const cpu = process.cpuUsage();
  await new Promise((resolve) => setTimeout(resolve, IDLE_MS));
  const used = process.cpuUsage(cpu);
  idle[flavour].push((used.user + used.system) / 1000);
  await app.close();
  return bootMs;
}

// Warm-up (module loading, JIT) for both, not measured.
await drift('nestjs', 5);
await drift('ours', 5);
await drift('policies', 5);
console.log(`fixed-rate @Interval(${PERIOD}) over ${TICKS} ticks, ${DRIFT_ROUNDS} rounds:`);
const driftResult = await compare(
  'mean drift from the ideal schedule',
  'ms',
  { name: '@nestjs/schedule @Interval', run: () => drift('nestjs') },
  { name: 'nestjs-concurrency @Interval', run: () => drift('ours') },
  DRIFT_ROUNDS,
);
const policyDrift = await compare(
  'mean drift, policies (lock + buffer-one + catchUp + pauseAfterFailures) against the plain path',
  'ms',
  { name: 'nestjs-concurrency @Interval', run: () => drift('ours') },
  { name: 'with policies', run: () => drift('policies') },
  DRIFT_ROUNDS,
);
goal(
  'policies add no measurable drift (<= 1 ms over the plain path)',
  policyDrift.ours.median - policyDrift.baseline.median <= 1,
  `${(policyDrift.ours.median - policyDrift.baseline.median).toFixed(2)} ms`,
);
goal('fixed-rate mean drift <= 2 ms', driftResult.ours.median <= 2, `${driftResult.ours.median.toFixed(2)} ms`);

console.log(`${JOBS.toLocaleString('en')} interval jobs, ${BOOT_ROUNDS} rounds:`);
await compare(
  `boot (create + init) with ${JOBS} interval jobs`,
  'ms',
  { name: '@nestjs/schedule', run: () => boot('nestjs') },
  { name: 'nestjs-concurrency', run: () => boot('ours') },
  BOOT_ROUNDS,
);
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
console.log(
  `idle CPU over ${IDLE_MS} ms with ${JOBS} interval jobs: @nestjs/schedule ${med(idle.nestjs).toFixed(1)} ms | ` +
    `nestjs-concurrency ${med(idle.ours).toFixed(1)} ms  (runs: [${idle.nestjs.map((x) => x.toFixed(1)).join(', ')}] ` +
    `vs [${idle.ours.map((x) => x.toFixed(1)).join(', ')}])`,
);
printPeakRss();
