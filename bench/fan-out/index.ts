/**
 * bench/fan-out: 1,000,000 trivial async items at concurrency 16 with default options (timeouts on, 5000 ms),
 * FanOut.map against a hand-written worker pool (the floor) and against p-map; then 10,000,000 items of an endless
 * generator through FanOut.stream, watching RSS.
 */
import { FanOut } from 'nestjs-concurrency';
import pMap from 'p-map';
import { compare, gc, goal, printPeakRss } from '../harness.js';

const N = Number(process.env.FAN_OUT_ITEMS ?? 1_000_000);
const STREAM_N = Number(process.env.FAN_OUT_STREAM_ITEMS ?? 10_000_000);
const CONCURRENCY = 16;
const trivial = async (i: number) => i;
const fanOut = new FanOut();

// stream: an endless generator, memory must stay flat
function* endless() {
  for (let i = 0; ; i++) yield i;
}
gc();
const rssBefore = process.memoryUsage().rss;
const heapBefore = process.memoryUsage().heapUsed;
let peak = rssBefore;
let count = 0;
const start = process.hrtime.bigint();
for await (const outcome of fanOut.stream(endless(), async (i: number) => i, { concurrency: CONCURRENCY })) {
  if (outcome.status !== 'fulfilled') throw new Error('unexpected failure');
  if (++count % 500_000 === 0) peak = Math.max(peak, process.memoryUsage().rss);
  if (count === STREAM_N) break;
}
const streamNs = Number(process.hrtime.bigint() - start) / STREAM_N;
const growthMb = (peak - rssBefore) / 1024 / 1024;
gc();
const heapGrowthMb = (process.memoryUsage().heapUsed - heapBefore) / 1024 / 1024;
console.log(
  `stream: ${STREAM_N.toLocaleString('en')} items of an endless generator in ${((streamNs * STREAM_N) / 1e9).toFixed(1)} s ` +
    `(${streamNs.toFixed(0)} ns/item), RSS growth ${growthMb.toFixed(1)} MB, ` +
    `heap after GC vs before ${heapGrowthMb.toFixed(1)} MB`,
);
goal('stream over 10M generated items keeps RSS growth < 50 MB', growthMb < 50, `${growthMb.toFixed(1)} MB`);

const inputs = Array.from({ length: N }, (_, i) => i);

async function handPool(): Promise<number> {
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= N) break;
      await trivial(inputs[i]);
    }
  };
  const start = process.hrtime.bigint();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return Number(process.hrtime.bigint() - start) / N;
}

/**
 * The same pool writing each result into a results array sized once, as `map` must: what a hand-written `map` costs.
 * On a VM where fresh memory is expensive the 8 MB array alone is 20-25 ns/item, which the pool above never pays.
 */
async function handPoolWithResults(): Promise<number> {
  let next = 0;
  const start = process.hrtime.bigint();
  // oxlint-disable-next-line unicorn/no-new-array -- sized once, as FanOut.map does
  const results: number[] = new Array(N);
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= N) break;
      results[i] = await trivial(inputs[i]);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  if (results[N - 1] !== N - 1) throw new Error('hand pool returned wrong results');
  return Number(process.hrtime.bigint() - start) / N;
}

async function viaPMap(): Promise<number> {
  const start = process.hrtime.bigint();
  await pMap(inputs, trivial, { concurrency: CONCURRENCY });
  return Number(process.hrtime.bigint() - start) / N;
}

async function viaFanOut(): Promise<number> {
  const start = process.hrtime.bigint();
  const out = await fanOut.map(inputs, trivial, { concurrency: CONCURRENCY });
  const ns = Number(process.hrtime.bigint() - start) / N;
  if (out.length !== N || out[N - 1] !== N - 1) throw new Error('FanOut.map returned wrong results');
  return ns;
}

// warm up all three so no one pays for JIT in round 1
for (let i = 0; i < 2; i++) {
  await handPool();
  await handPoolWithResults();
  await viaPMap();
  await viaFanOut();
}

console.log(`${N.toLocaleString('en')} trivial async items, concurrency ${CONCURRENCY}, timeout 5000 ms (default)`);
const vsPool = await compare(
  'map vs hand pool',
  'ns/item',
  { name: 'hand pool', run: handPool },
  { name: 'FanOut.map', run: viaFanOut },
);
const vsCollecting = await compare(
  'map vs hand pool collecting results',
  'ns/item',
  { name: 'hand pool + results', run: handPoolWithResults },
  { name: 'FanOut.map', run: viaFanOut },
);
const vsPMap = await compare(
  'map vs p-map',
  'ns/item',
  { name: 'p-map', run: viaPMap },
  { name: 'FanOut.map', run: viaFanOut },
);
goal('FanOut.map <= 1.6x the hand pool', vsPool.ratio <= 1.6, `${vsPool.ratio.toFixed(2)}x`);
console.log(`FanOut.map vs a hand pool that collects results (informative): ${vsCollecting.ratio.toFixed(2)}x`);
goal('FanOut.map >= 4x faster than p-map', 1 / vsPMap.ratio >= 4, `${(1 / vsPMap.ratio).toFixed(2)}x faster`);

printPeakRss();
