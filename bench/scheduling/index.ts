/**
 * bench/scheduling: (1) fixed-rate @Interval(100) over 100 ticks: mean drift of each tick from the ideal schedule
 * (first tick + n x 100 ms) for four contenders, each round running all four one after the other in one process (the
 * order rotates every round): @nestjs/schedule's @Interval(100); ours without a lock (the plain path); ours with
 * `lock: true` on an InMemoryJobLock and the default overlap 'skip' (the lock path); the same job and lock with the
 * issue 25 policies ('buffer-one', catchUp, pauseAfterFailures). The policies are measured against the lock path: both
 * wait for the lock before each call, so the difference is what the policies add;
 * (2) 10,000 registered interval jobs (every 60 s): boot time (create + init) and idle CPU over 3 s.
 *
 * To keep `npm run bench` short the drift comparison runs 3 rounds (10 s per contender and round, after a short
 * warm-up of each) and the 10,000-job one 3 rounds; BENCH_ROUNDS / SCHEDULING_TICKS override.
 * SCHEDULING_DRIFT_ONLY=1 runs (1) only.
 */
import 'reflect-metadata';
import { Injectable, Module, type Type } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Interval as NestInterval, ScheduleModule } from '@nestjs/schedule';
import { ConcurrencyModule, InMemoryJobLock, Interval } from 'nestjs-concurrency';
import { compare, gc, goal, median, printComparison, printPeakRss } from '../harness.js';

const TICKS = Number(process.env.SCHEDULING_TICKS ?? 100);
const PERIOD = 100;
const JOBS = 10_000;
const IDLE_MS = 3000;
const DRIFT_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const BOOT_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const DRIFT_ONLY = process.env.SCHEDULING_DRIFT_ONLY === '1';

type Flavour = 'ours' | 'nestjs' | 'lock' | 'policies';
const moduleOf = (flavour: Flavour) =>
  flavour === 'nestjs'
    ? ScheduleModule.forRoot()
    : ConcurrencyModule.forRoot(
        flavour === 'lock' || flavour === 'policies' ? { jobs: { lock: new InMemoryJobLock() } } : {},
      );
/** The lock path alone: the tick's lease and the running lease, overlap 'skip' (the default). */
const LOCK_ONLY = { lock: true } as const;
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
    flavour === 'ours'
      ? Interval(PERIOD)
      : flavour === 'lock'
        ? Interval(PERIOD, LOCK_ONLY)
        : flavour === 'policies'
          ? Interval(PERIOD, POLICIES)
          : NestInterval(PERIOD);
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

const idle: Record<'ours' | 'nestjs', number[]> = { ours: [], nestjs: [] };

async function boot(flavour: 'ours' | 'nestjs', provider: Type): Promise<number> {
  @Module({ imports: [moduleOf(flavour)], providers: [provider] })
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

const contenders: Array<{ flavour: Flavour; name: string }> = [
  { flavour: 'nestjs', name: '@nestjs/schedule @Interval' },
  { flavour: 'ours', name: 'nestjs-concurrency @Interval' },
  { flavour: 'lock', name: 'lock + skip' },
  { flavour: 'policies', name: 'policies' },
];

// Warm-up (module loading, JIT) for each, not measured.
for (const { flavour } of contenders) await drift(flavour, 5);
console.log(
  `fixed-rate @Interval(${PERIOD}) over ${TICKS} ticks, ${DRIFT_ROUNDS} rounds (each round runs every contender, ` +
    'in an order rotated by one each round):',
);
const runs: Record<Flavour, number[]> = { nestjs: [], ours: [], lock: [], policies: [] };
for (let round = 0; round < DRIFT_ROUNDS; round++) {
  for (let i = 0; i < contenders.length; i++) {
    const { flavour } = contenders[(round + i) % contenders.length];
    runs[flavour].push(await drift(flavour));
  }
}
const side = (flavour: Flavour) => {
  const { name } = contenders.find((c) => c.flavour === flavour)!;
  return { name, median: median(runs[flavour]), runs: runs[flavour] };
};
const pair = (metric: string, baseline: Flavour, ours: Flavour) => {
  const result = { metric, unit: 'ms', baseline: side(baseline), ours: side(ours), ratio: 0 };
  result.ratio = result.ours.median / result.baseline.median;
  printComparison(result);
  return result;
};
const plain = pair('mean drift from the ideal schedule', 'nestjs', 'ours');
pair('mean drift, the lock path (lock: true, overlap skip) against the plain path', 'ours', 'lock');
const policies = pair(
  'mean drift, policies (lock + buffer-one + catchUp + pauseAfterFailures) against lock + skip',
  'lock',
  'policies',
);
// Per round: the two ran in the same round (one right after the other in 3 rounds out of 4).
const ratios = runs.policies.map((p, i) => p / runs.lock[i]);
console.log(
  `ratio policies / lock + skip per round: [${ratios.map((r) => r.toFixed(2)).join(', ')}], median ` +
    `${median(ratios).toFixed(2)}x`,
);
const over = policies.ours.median - policies.baseline.median;
goal('policies add no measurable drift (<= 1 ms over lock + skip)', over <= 1, `${over.toFixed(2)} ms`);
goal('fixed-rate mean drift <= 2 ms', plain.ours.median <= 2, `${plain.ours.median.toFixed(2)} ms`);

if (!DRIFT_ONLY) {
  const providers = { ours: manyJobs('ours'), nestjs: manyJobs('nestjs') };
  console.log(`${JOBS.toLocaleString('en')} interval jobs, ${BOOT_ROUNDS} rounds:`);
  await compare(
    `boot (create + init) with ${JOBS} interval jobs`,
    'ms',
    { name: '@nestjs/schedule', run: () => boot('nestjs', providers.nestjs) },
    { name: 'nestjs-concurrency', run: () => boot('ours', providers.ours) },
    BOOT_ROUNDS,
  );
  console.log(
    `idle CPU over ${IDLE_MS} ms with ${JOBS} interval jobs: @nestjs/schedule ${median(idle.nestjs).toFixed(1)} ms | ` +
      `nestjs-concurrency ${median(idle.ours).toFixed(1)} ms  (runs: [${idle.nestjs.map((x) => x.toFixed(1)).join(', ')}] ` +
      `vs [${idle.ours.map((x) => x.toFixed(1)).join(', ')}])`,
  );
}
printPeakRss();
