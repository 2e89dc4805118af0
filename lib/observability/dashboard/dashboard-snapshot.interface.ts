import type { DurationPercentiles } from './duration-rings.js';

/** @internal What the dashboard page receives, once per second over SSE: counts and names, no payloads, no stacks. */
export interface DashboardSnapshot {
  at: number;
  readOnly: boolean;
  supervisors: Array<{
    name: string;
    counts: {
      started: number;
      completed: number;
      failed: number;
      timedOut: number;
      terminated: number;
      restarted: number;
      /** Starts refused because `maxChildren` children were live. */
      refused: number;
    };
    /** `maxChildren`; null when unbounded. */
    capacity: number | null;
    /** p50/p95/p99 (ms) of the supervisor's most recent attempt durations (`DURATIONS_KEPT`); null before any. */
    durations: DurationPercentiles | null;
    /** Live children (at most `CHILDREN_SHOWN`), and how many there are in all. */
    total: number;
    children: Array<{ id: string; name: string | null; status: string; ageMs: number | null; attempt: number }>;
  }>;
  jobs: Array<{
    name: string;
    kind: string;
    schedule: string | number;
    running: number;
    runs: number;
    failures: number;
    skipped: number;
    paused: boolean;
    lastRunAt: number | null;
    lastDurationMs: number | null;
    nextRunAt: number | null;
    /** The last error's message only (cut at `ERROR_MAX` characters). */
    lastError: string | null;
    /** When the last error happened (epoch ms). */
    lastErrorAt: number | null;
    /** A run started after the last error and ended without one: the error is past, not the job's state. */
    lastErrorPast: boolean;
    /** p50/p95/p99 (ms) of the job's most recent run durations on this instance; null before any. */
    durations: DurationPercentiles | null;
    /**
     * The last runs (at most `RECENT_RUNS_SHOWN`), newest first: the cluster's with a lock store that keeps history,
     * else this instance's. `instance` and `error` cut and cleaned as shown.
     */
    recent: Array<{
      outcome: 'completed' | 'failed' | 'timeout';
      startedAt: number;
      durationMs: number;
      instance: string;
      error?: string;
    }>;
  }>;
  /** The calls in flight (at most `FAN_OUT_SHOWN`), and how many there are in all. */
  fanOut: Array<{ id: string; settled: number; total: number | null; failed: number; timedOut: number; ageMs: number }>;
  fanOutTotal: number;
  cache: {
    hits: number;
    misses: number;
    stale: number;
    coalesced: number;
    errors: number;
    entries: number;
    /** Each `@Cached` provider method's share of the counters, by `Class.method`. */
    methods?: Record<string, { hits: number; misses: number; stale: number; coalesced: number }>;
  };
  /**
   * Null when `durable` is not configured; `error` when Redis did not answer. `stale`: Redis is slow to answer, so
   * these are the queues of the last answer (`asOf`, epoch ms; none if there was none yet).
   */
  durable: {
    /** Per task name: children waiting (or delayed, backing off), running, and failed for good (kept 24 h). */
    queues: Array<{ task: string; waiting: number; running: number; failed: number }>;
    /**
     * Unfinished children one by one (at most `DURABLE_CHILDREN_SHOWN`, running first), and how many were listed.
     * `id` and `task` as shown (cut, bidi controls replaced); `target`: the exact ones, for the Terminate action.
     */
    children: Array<{
      id: string;
      task: string;
      status: 'waiting' | 'delayed' | 'running';
      attempt: number;
      target: { task: string; id: string };
    }>;
    childrenTotal: number;
    /**
     * Durable batches, newest first (at most `DURABLE_BATCHES_SHOWN`), with their progress; `batchesTotal`: how many
     * are listed in Redis (the newest 1,000 batch ids are kept, those whose record expired are dropped).
     */
    batches: Array<{
      id: string;
      task: string;
      status: 'running' | 'done' | 'failed' | 'cancelled';
      total: number;
      completed: number;
      failed: number;
      running: number;
      waiting: number;
    }>;
    batchesTotal: number;
    /**
     * Children that failed for good most recently, newest first (at most `DURABLE_FAILURES_PER_TASK` per task name,
     * `DURABLE_FAILURES_SHOWN` in all): `failedAt` epoch ms, `error` cut at `ERROR_MAX`; texts shown as `id`/`task`.
     */
    failures: Array<{ id: string; task: string; attempt: number; failedAt: number; error: string }>;
    error?: string;
    stale?: true;
    asOf?: number;
  } | null;
}
