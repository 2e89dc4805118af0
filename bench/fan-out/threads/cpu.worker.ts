/**
 * The worker module of bench/fan-out/threads, for both contenders: FanOut's `workerFn(url, 'work')` calls
 * `work(input, { index })`, raw piscina (`name: 'work'`) calls `work(input)`. Compiled to cpu.worker.js beside the
 * bench, as a Nest app's worker module is compiled into dist/.
 */

/** Pure JavaScript CPU work: `iterations` rounds of integer arithmetic (a fixed amount of work, not of time). */
export function work(iterations: number): number {
  let x = 0;
  for (let i = 0; i < iterations; i++) x = (x * 31 + i) % 1_000_003;
  return x;
}
