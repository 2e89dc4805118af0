import type { CatchUpState, JobLease, JobLock } from '../interfaces/job-lock.interface.js';
import type { JobControlChange, JobControlState, JobRun } from '../interfaces/job-run.interface.js';

const SWEEP_EVERY = 256;

/**
 * A `JobLock` inside one process: for tests and single-instance apps (several app instances in one process can share
 * one). Same semantics as `RedisJobLock`: leases expire by their TTL, release/extend check the owner's token.
 */
export class InMemoryJobLock implements JobLock {
  readonly #leases = new Map<string, { token: number; expiresAt: number }>();
  /** Each job's last run tick (catch-up): kept for the life of this object, lost on restart. */
  readonly #ticks = new Map<string, number>();
  /** Each job's catch-up in progress. */
  readonly #catchUps = new Map<string, CatchUpState>();
  #counter = 0;
  /** Per job, newest last. */
  readonly #runs = new Map<string, JobRun[]>();
  readonly #control = new Map<string, JobControlChange>();
  /** The newest pause()/resume() call time stored per job (a late write of an older call changes nothing). */
  readonly #pausedAt = new Map<string, number>();
  #version = 0;

  async acquire(key: string, ttlMs: number): Promise<JobLease | null> {
    const now = Date.now();
    if (++this.#counter % SWEEP_EVERY === 0) this.#sweep(now);
    const held = this.#leases.get(key);
    if (held && held.expiresAt > now) return null;
    const token = this.#counter;
    this.#leases.set(key, { token, expiresAt: now + ttlMs });
    return {
      token,
      release: async () => {
        if (this.#leases.get(key)?.token === token) this.#leases.delete(key);
      },
      extend: async (ms: number) => {
        const lease = this.#leases.get(key);
        if (lease?.token !== token || lease.expiresAt <= Date.now()) return false;
        lease.expiresAt = Date.now() + ms;
        return true;
      },
    };
  }

  async peek(key: string): Promise<boolean> {
    const held = this.#leases.get(key);
    return held !== undefined && held.expiresAt > Date.now();
  }

  async lastTick(job: string): Promise<number | null> {
    return this.#ticks.get(job) ?? null;
  }

  async recordTick(job: string, at: number): Promise<void> {
    if (!((this.#ticks.get(job) ?? -Infinity) >= at)) this.#ticks.set(job, at);
  }

  async catchUpState(job: string): Promise<CatchUpState | null> {
    const state = this.#catchUps.get(job);
    return state ? { ...state } : null;
  }

  async recordCatchUp(job: string, state: Partial<CatchUpState>): Promise<void> {
    const current = this.#catchUps.get(job) ?? { done: -Infinity, until: -Infinity };
    const next = {
      done: Math.max(current.done, state.done ?? -Infinity),
      until: Math.max(current.until, state.until ?? -Infinity),
    };
    this.#catchUps.set(job, next);
  }

  /** Run history shared by the app instances that share this lock (one process). */
  async addRun(job: string, run: JobRun, keep: number): Promise<void> {
    let runs = this.#runs.get(job);
    if (!runs) this.#runs.set(job, (runs = []));
    runs.push(copyRun(run));
    if (runs.length > keep) runs.splice(0, runs.length - keep);
  }

  async runs(job: string, limit: number): Promise<JobRun[]> {
    const runs = this.#runs.get(job) ?? [];
    return runs
      .slice(Math.max(0, runs.length - limit))
      .reverse()
      .map(copyRun);
  }

  async setControl(job: string, change: JobControlChange): Promise<boolean> {
    const state = { ...this.#control.get(job) };
    const at = this.#pausedAt.get(job);
    if (change.paused !== undefined && change.pausedAt !== undefined) {
      // a late write of an older call: the newer stored one wins
      const late = change.late || (change.lateAfter !== undefined && Date.now() > change.lateAfter);
      if (late && at !== undefined && at > change.pausedAt) return false;
      if (at === undefined || at < change.pausedAt) this.#pausedAt.set(job, change.pausedAt);
    }
    if (change.paused !== undefined) state.paused = change.paused;
    if (change.schedule !== undefined) state.schedule = { ...change.schedule };
    this.#control.set(job, state);
    this.#version++;
    return true;
  }

  async control(known: number | null): Promise<JobControlState | null> {
    if (known === this.#version) return null;
    const jobs = new Map<string, JobControlChange>();
    for (const [job, state] of this.#control) jobs.set(job, { ...state });
    return { version: this.#version, jobs };
  }

  /** Leases currently held (expired ones excluded). */
  get size(): number {
    this.#sweep(Date.now());
    return this.#leases.size;
  }

  #sweep(now: number): void {
    for (const [key, lease] of this.#leases) if (lease.expiresAt <= now) this.#leases.delete(key);
  }
}

function copyRun(run: JobRun): JobRun {
  const copy: JobRun = { ...run, scheduledAt: new Date(run.scheduledAt), startedAt: new Date(run.startedAt) };
  if (copy.error === undefined) delete copy.error;
  return copy;
}
