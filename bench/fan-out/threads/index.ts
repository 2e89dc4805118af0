/**
 * bench/fan-out/threads: CPU-bound items on worker threads (issue 14). The same items (200 of about 20 ms of pure
 * JavaScript each) through
 *   - FanOut.map with workerFn (a thread per core, the default),
 *   - FanOut.map in process (the event loop does the work),
 *   - raw piscina run() with the same thread count, every item submitted at once (the floor),
 * then the per-item overhead on tiny items (ours vs raw piscina with the same items in flight, and all at once) and
 * the event-loop delay p99 during the run (ours on threads vs in process). BENCH_PARTS=tiny runs the tiny items only.
 */
import { availableParallelism, loadavg } from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FanOut, workerFn } from 'nestjs-concurrency';
import { Piscina } from 'piscina';
import { compare, goal, median, printPeakRss } from '../../harness.js';
import { work } from './cpu.worker.js';

const ITEMS = Number(process.env.THREADS_ITEMS ?? 200);
const ITEM_MS = Number(process.env.THREADS_ITEM_MS ?? 20);
const TINY = Number(process.env.THREADS_TINY_ITEMS ?? 20_000);
const THREADS = availableParallelism();
const MODULE = new URL('./cpu.worker.js', import.meta.url);

/** Iterations of `work` that take about ITEM_MS on this machine now (the median of a few timings, once optimised). */
function calibrate(): number {
  const probe = 2_000_000;
  for (let i = 0; i < 20; i++) work(probe);
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const start = process.hrtime.bigint();
    work(probe);
    times.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return Math.round((probe * ITEM_MS) / median(times));
}

const iterations = calibrate();
const inputs = Array.from({ length: ITEMS }, () => iterations);
const tinyInputs = Array.from({ length: TINY }, () => 0);

const fanOut = new FanOut();
const onThreads = workerFn<number, number>(MODULE, 'work');
const pool = new Piscina({ filename: MODULE.href, name: 'work', minThreads: THREADS, maxThreads: THREADS });
pool.on('error', () => {});

const ms = (start: bigint) => Number(process.hrtime.bigint() - start) / 1e6;

/** Per contender and run: cores used on average (process CPU time, all threads, / wall time) and CPU time (ms). */
const parallelism: Record<string, number[]> = { ours: [], inProcess: [], raw: [] };
const cpuMs: Record<string, number[]> = { ours: [], inProcess: [], raw: [] };
async function timed(kind: string, run: () => Promise<unknown>): Promise<number> {
  const cpu = process.cpuUsage();
  const start = process.hrtime.bigint();
  await run();
  const wall = ms(start);
  const used = process.cpuUsage(cpu);
  parallelism[kind].push((used.user + used.system) / 1000 / wall);
  cpuMs[kind].push((used.user + used.system) / 1000);
  return wall;
}

const check = (out: unknown[]) => {
  if (out.length !== ITEMS) throw new Error('wrong number of results');
};
const oursMap = () => timed('ours', async () => check(await fanOut.map(inputs, onThreads, { timeout: 60_000 })));
const inProcessMap = () =>
  timed('inProcess', async () => check(await fanOut.map(inputs, (n: number) => work(n), { timeout: 60_000 })));
const rawPiscina = () => timed('raw', async () => check(await Promise.all(inputs.map((n) => pool.run(n)))));

/** µs per tiny item (`work(0)`): what a call costs besides the work itself. */
const tiny = (run: () => Promise<unknown>) => async (): Promise<number> => {
  const start = process.hrtime.bigint();
  await run();
  return (ms(start) * 1000) / TINY;
};
const tinyOurs = tiny(() => fanOut.map(tinyInputs, onThreads));
const tinyOursWide = tiny(() => fanOut.map(tinyInputs, onThreads, { concurrency: 16 * THREADS }));
const tinyRaw = tiny(() => Promise.all(tinyInputs.map((n) => pool.run(n))));
/** Raw piscina with the same bound as ours: `THREADS` items in flight, the next one posted when one returns. */
const tinyRawBounded = tiny(async () => {
  let next = 0;
  const lane = async () => {
    while (next < TINY) await pool.run(tinyInputs[next++]);
  };
  await Promise.all(Array.from({ length: THREADS }, lane));
});
/** BENCH_PARTS=tiny: only the tiny-item overhead (a quick run on a busy machine). */
const only = process.env.BENCH_PARTS;

/**
 * The event-loop delay p99 (ms) while `run` runs, sampled every 10 ms. The histogram measures the time between two of
 * its timer's turns, so it runs a few turns before the run and after it: a run that blocks the loop throughout (in
 * process, the synchronous items run back to back) is then one sample as long as the run.
 */
async function loopDelayP99(run: () => Promise<unknown>): Promise<number> {
  const histogram = monitorEventLoopDelay({ resolution: 10 });
  histogram.enable();
  await new Promise((resolve) => setTimeout(resolve, 30));
  await run();
  await new Promise((resolve) => setTimeout(resolve, 30));
  histogram.disable();
  return histogram.percentile(99) / 1e6;
}

// warm-up: threads started, modules loaded, JIT on both sides
if (only !== 'tiny') {
  await oursMap();
  await rawPiscina();
  await fanOut.map(inputs.slice(0, 10), (n: number) => work(n));
}
await tinyOurs();
await tinyRaw();
await tinyRawBounded();

const load = () =>
  loadavg()
    .map((n) => n.toFixed(2))
    .join(' ');
if (only !== 'tiny') {
  console.log(
    `${ITEMS} items of ~${ITEM_MS} ms of pure JS (${iterations.toLocaleString('en')} iterations each), ` +
      `${THREADS} threads (availableParallelism); load average before: ${load()}`,
  );
  const speedup = await compare(
    'map on threads vs in process',
    'ms',
    { name: 'FanOut.map in process', run: inProcessMap },
    { name: 'FanOut.map workerFn', run: oursMap },
  );
  const vsRaw = await compare(
    'map on threads vs raw piscina',
    'ms',
    { name: `piscina run() x${THREADS} threads`, run: rawPiscina },
    { name: 'FanOut.map workerFn', run: oursMap },
  );
  const times = 1 / speedup.ratio;
  goal(
    `FanOut.map on threads >= 0.9 x cores (${(0.9 * THREADS).toFixed(1)}x) faster than in process`,
    times >= 0.9 * THREADS,
    `${times.toFixed(2)}x faster`,
  );
  goal('FanOut.map on threads <= 1.15x raw piscina run()', vsRaw.ratio <= 1.15, `${vsRaw.ratio.toFixed(2)}x`);
  console.log(
    `cores used on average (CPU time / wall time, medians): ours ${median(parallelism.ours).toFixed(2)}, ` +
      `raw piscina ${median(parallelism.raw).toFixed(2)}, in process ${median(parallelism.inProcess).toFixed(2)} ` +
      `(a shared machine gives less than ${THREADS} to the threads when other work runs)`,
  );
  // What the wall time would be with every core free: the same CPU time spread over THREADS cores. A model, printed
  // beside the measured figure because other work on this machine takes cores away from the threads.
  const efficiency = median(cpuMs.inProcess) / median(cpuMs.ours);
  console.log(
    `CPU time per run (medians): in process ${median(cpuMs.inProcess).toFixed(0)} ms, ours ${median(cpuMs.ours).toFixed(0)} ms, ` +
      `raw piscina ${median(cpuMs.raw).toFixed(0)} ms; with ${THREADS} free cores ours would be ` +
      `${(THREADS * efficiency).toFixed(2)}x faster than in process (cores x in-process CPU / our CPU)`,
  );
}

console.log(`${TINY.toLocaleString('en')} tiny items (work(0)): per-item overhead; load average before: ${load()}`);
const overheadBounded = await compare(
  `tiny items, default concurrency (= threads), vs raw piscina with ${THREADS} in flight`,
  'µs/item',
  { name: `piscina run(), ${THREADS} in flight`, run: tinyRawBounded },
  { name: 'FanOut.map workerFn', run: tinyOurs },
);
const overhead = await compare(
  'tiny items, default concurrency (= threads), vs raw piscina all at once',
  'µs/item',
  { name: 'piscina run(), all at once', run: tinyRaw },
  { name: 'FanOut.map workerFn', run: tinyOurs },
);
const overheadWide = await compare(
  `tiny items, concurrency ${16 * THREADS}`,
  'µs/item',
  { name: 'piscina run(), all at once', run: tinyRaw },
  { name: 'FanOut.map workerFn', run: tinyOursWide },
);
console.log(
  `per-item overhead: ours ${overhead.ours.median.toFixed(1)} µs (concurrency ${THREADS}), ` +
    `${overheadWide.ours.median.toFixed(1)} µs (concurrency ${16 * THREADS}); raw piscina ` +
    `${overheadBounded.baseline.median.toFixed(1)} µs (${THREADS} in flight), ${overhead.baseline.median.toFixed(1)} µs (all at once)`,
);
goal(
  'tiny-item workerFn overhead <= 1.2x raw piscina with the same items in flight',
  overheadBounded.ratio <= 1.2,
  `${overheadBounded.ratio.toFixed(2)}x`,
);
goal(
  `tiny-item workerFn at concurrency ${16 * THREADS} <= 1.2x raw piscina all at once`,
  overheadWide.ratio <= 1.2,
  `${overheadWide.ratio.toFixed(2)}x`,
);

if (only !== 'tiny') {
  const delay = await compare(
    'event-loop delay p99 during the run',
    'ms',
    { name: 'FanOut.map in process', run: () => loopDelayP99(inProcessMap) },
    { name: 'FanOut.map workerFn', run: () => loopDelayP99(oursMap) },
  );
  const delayRaw = await compare(
    'event-loop delay p99 during the run, threads',
    'ms',
    { name: `piscina run() x${THREADS} threads`, run: () => loopDelayP99(rawPiscina) },
    { name: 'FanOut.map workerFn', run: () => loopDelayP99(oursMap) },
  );
  goal(
    'event-loop delay p99 on threads <= 1/10 of in process',
    delay.ratio <= 0.1,
    `${delay.ours.median.toFixed(1)} ms vs ${delay.baseline.median.toFixed(1)} ms in process ` +
      `(raw piscina ${delayRaw.baseline.median.toFixed(1)} ms)`,
  );
}
console.log(`load average after: ${load()}`);

await fanOut.onApplicationShutdown();
await pool.destroy();
printPeakRss();
