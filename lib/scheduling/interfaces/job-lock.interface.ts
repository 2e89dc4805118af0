/** A distributed lock for job ticks: one instance of a cluster wins each tick. */
export interface JobLock {
  /** Take the lease for `key` for `ttlMs`; resolves `null` when another owner holds it. */
  acquire(key: string, ttlMs: number): Promise<JobLease | null>;
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
