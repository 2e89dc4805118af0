/** Durations kept per job or supervisor for the page's percentiles: the most recent ones, a fixed memory cost. */
export const DURATIONS_KEPT = 256;

/** @internal p50 / p95 / p99 of the recent durations (ms), and how many they are computed from. */
export interface DurationPercentiles {
  count: number;
  p50: number;
  p95: number;
  p99: number;
}

/** One fixed-size ring: recording overwrites the oldest duration, in O(1) and without allocating. */
class Ring {
  readonly values = new Float64Array(DURATIONS_KEPT);
  next = 0;
  size = 0;

  push(ms: number): void {
    this.values[this.next] = ms;
    this.next = (this.next + 1) % DURATIONS_KEPT;
    if (this.size < DURATIONS_KEPT) this.size++;
  }
}

/** Nearest-rank percentile of ascending `sorted` (non-empty). */
const rank = (sorted: Float64Array, p: number): number =>
  sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];

/**
 * @internal The most recent durations per key (a job or supervisor name), `DURATIONS_KEPT` each. A task or run only
 * writes one number into its ring; the percentiles are computed when asked (once per snapshot, for all pages).
 * Keys are the application's job and supervisor names: a bounded set, fixed at boot.
 */
export class DurationRings {
  readonly #rings = new Map<string, Ring>();

  record(key: string, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    let ring = this.#rings.get(key);
    if (ring === undefined) {
      ring = new Ring();
      this.#rings.set(key, ring);
    }
    ring.push(ms);
  }

  /** `null` when nothing was recorded under `key`. */
  percentiles(key: string): DurationPercentiles | null {
    const ring = this.#rings.get(key);
    if (ring === undefined || ring.size === 0) return null;
    const sorted = ring.values.slice(0, ring.size).sort();
    return { count: ring.size, p50: rank(sorted, 50), p95: rank(sorted, 95), p99: rank(sorted, 99) };
  }

  clear(): void {
    this.#rings.clear();
  }
}
