/**
 * The shared bench harness: run a baseline and ours alternately (A B A B ...) for several rounds in one process,
 * then print medians, the ratio ours/baseline and peak RSS. Benchmarks report; they assert nothing.
 */
export interface Contender {
  name: string;
  /** Runs one round and returns the measured figure (e.g. ns per item); lower is better unless `higherIsBetter`. */
  run: () => Promise<number> | number;
}

export interface Comparison {
  metric: string;
  unit: string;
  baseline: { name: string; median: number; runs: number[] };
  ours: { name: string; median: number; runs: number[] };
  /** ours / baseline, from the medians. */
  ratio: number;
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export async function compare(
  metric: string,
  unit: string,
  baseline: Contender,
  ours: Contender,
  rounds = Number(process.env.BENCH_ROUNDS ?? 5),
): Promise<Comparison> {
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < rounds; i++) {
    a.push(await baseline.run());
    b.push(await ours.run());
  }
  const result = {
    metric,
    unit,
    baseline: { name: baseline.name, median: median(a), runs: a },
    ours: { name: ours.name, median: median(b), runs: b },
    ratio: median(b) / median(a),
  };
  printComparison(result);
  return result;
}

const fmt = (n: number) => (Math.abs(n) >= 100 ? n.toFixed(0) : Math.abs(n) >= 10 ? n.toFixed(1) : n.toFixed(2));

export function printComparison(c: Comparison): void {
  console.log(
    `${c.metric}: ${c.baseline.name} ${fmt(c.baseline.median)} ${c.unit} | ${c.ours.name} ${fmt(c.ours.median)} ${c.unit} | ratio ours/baseline ${c.ratio.toFixed(2)}x` +
      `  (runs: [${c.baseline.runs.map(fmt).join(', ')}] vs [${c.ours.runs.map(fmt).join(', ')}])`,
  );
}

/** One line per goal: met / not met. */
export function goal(description: string, met: boolean, detail: string): void {
  console.log(`GOAL ${met ? 'met    ' : 'NOT MET'} ${description}: ${detail}`);
}

export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

export function printPeakRss(): void {
  console.log(`peak RSS: ${peakRssMb().toFixed(1)} MB`);
}

/** Forces a full GC when node runs with --expose-gc; benchmarks of retained memory need it. */
export function gc(): void {
  const collect = (globalThis as { gc?: () => void }).gc;
  if (!collect) throw new Error('run with node --expose-gc');
  collect();
  collect();
}
