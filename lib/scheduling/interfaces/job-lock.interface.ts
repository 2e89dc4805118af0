/** A distributed lock for job ticks: one instance of a cluster wins each tick. */
export interface JobLock {
  /** Take the lease for `key` for `ttlMs`; resolves `null` when another owner holds it. */
  acquire(key: string, ttlMs: number): Promise<JobLease | null>;
  /**
   * Whether a lease on `key` is held now. Needed by `overlap: 'cancel-previous'` with a lock: the running instance
   * watches for another instance's request to cancel its run. `RedisJobLock` and `InMemoryJobLock` have it.
   */
  peek?(key: string): Promise<boolean>;
  /**
   * The last tick (ms since the epoch) recorded for `job`, or `null`. Needed by `catchUp`. `RedisJobLock` keeps it in
   * Redis (it survives restarts); `InMemoryJobLock` in memory (it covers stalls, not restarts).
   */
  lastTick?(job: string): Promise<number | null>;
  /** Records `at` as `job`'s last tick unless a later one is recorded already. Needed by `catchUp`. */
  recordTick?(job: string, at: number): Promise<void>;
}

/** A held lease. */
export interface JobLease {
  /** A fencing token: increases with every lease the store grants. */
  readonly token: number;
  /** Gives the lease up, only if this owner still holds it (compare-and-set). */
  release(): Promise<void>;
  /** Extends the lease, only if this owner still holds it; resolves `false` when it was lost. */
  extend?(ttlMs: number): Promise<boolean>;
}
