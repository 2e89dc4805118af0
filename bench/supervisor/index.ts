/**
 * bench/supervisor: the cost of supervising fire-and-forget work.
 *
 * 1. Time per task: 1,000,000 trivial async children through `TaskSupervisor.startChild()` vs the raw, untracked
 *    `fn().catch(() => {})`. Both sides run the same `fn`, which counts its own completions; both then wait one
 *    `setImmediate` so every pending reaction (the raw side's `.catch`, the supervisor's bookkeeping) has run before
 *    the clock stops. Goal: <= 2.0x. Measured twice: as one synchronous burst, and paced at 1,000 per tick.
 * 2. Retained memory per live child: 100,000 children parked on one promise, heapUsed delta after a full GC, vs the
 *    same 100,000 raw calls parked on it. Goal: <= 1 KB per child.
 */
import { TaskSupervisor } from 'nestjs-concurrency';
import { compare, gc, goal, printPeakRss } from '../harness.js';

const N = Number(process.env.BENCH_TASKS ?? 1_000_000);
const PARKED = 100_000;
const noop = () => {};
const nextMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve));

async function timeTasks(start: (fn: () => Promise<void>) => void, perTick = N): Promise<number> {
  let done = 0;
  let finish!: () => void;
  const all = new Promise<void>((resolve) => (finish = resolve));
  const fn = async () => {
    if (++done === N) finish();
  };
  gc();
  const t0 = performance.now();
  for (let i = 0; i < N;) {
    const end = Math.min(N, i + perTick);
    for (; i < end; i++) start(fn);
    if (i < N) await nextMacrotask();
  }
  await all;
  await nextMacrotask();
  return ((performance.now() - t0) * 1e6) / N;
}

async function bytesPerParked(start: (fn: () => Promise<void>) => void, settled: () => Promise<void>): Promise<number> {
  let release!: () => void;
  const parked = new Promise<void>((resolve) => (release = resolve));
  const fn = async () => {
    await parked;
  };
  await nextMacrotask();
  gc();
  const before = process.memoryUsage().heapUsed;
  for (let i = 0; i < PARKED; i++) start(fn);
  await nextMacrotask();
  gc();
  const after = process.memoryUsage().heapUsed;
  release();
  await settled();
  return (after - before) / PARKED;
}

// The constructor is @internal (stripped from the published types; ConcurrencyModule creates supervisors): the bench
// builds one directly, as the specs do.
const Supervisor = TaskSupervisor as unknown as new (name: string) => TaskSupervisor;
const supervisor = new Supervisor('bench');
const raw = (fn: () => Promise<void>) => void fn().catch(noop);
const supervised = (fn: () => Promise<void>) => void supervisor.startChild(fn);

const time = await compare(
  `${N.toLocaleString('en')} trivial tasks, time per task`,
  'ns',
  { name: 'raw fn().catch()', run: () => timeTasks(raw) },
  {
    name: 'startChild()',
    run: async () => {
      const ns = await timeTasks(supervised);
      if (supervisor.children().length !== 0) throw new Error('children left behind');
      return ns;
    },
  },
);
goal('startChild <= 2.0x raw time per task', time.ratio <= 2, `${time.ratio.toFixed(2)}x`);

// The same million in bursts of 1,000 per macrotask: neither side keeps a million reactions alive at once, so this
// isolates the per-child bookkeeping from the garbage collector's share of the burst above.
const paced = await compare(
  `${N.toLocaleString('en')} trivial tasks, 1,000 per tick, time per task`,
  'ns',
  { name: 'raw fn().catch()', run: () => timeTasks(raw, 1000) },
  { name: 'startChild()', run: () => timeTasks(supervised, 1000) },
);
goal('startChild <= 2.0x raw time per task (paced)', paced.ratio <= 2, `${paced.ratio.toFixed(2)}x`);

const memory = await compare(
  `${PARKED.toLocaleString('en')} live tasks parked on one promise, retained heap per task`,
  'bytes',
  { name: 'raw fn().catch()', run: () => bytesPerParked(raw, nextMacrotask) },
  {
    name: 'startChild()',
    run: () =>
      bytesPerParked(supervised, async () => {
        await nextMacrotask();
        if (supervisor.children().length !== 0) throw new Error('children left behind');
      }),
  },
  3,
);
goal('<= 1 KB retained per live child', memory.ours.median <= 1024, `${memory.ours.median.toFixed(0)} bytes`);
printPeakRss();
await supervisor.shutdown();
