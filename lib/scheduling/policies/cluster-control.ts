import type { LoggerService } from '@nestjs/common';
import type { JobLock } from '../interfaces/job-lock.interface.js';
import type { JobControlChange, JobControlState } from '../interfaces/job-run.interface.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { withTimeout } from '../../utils/with-timeout.js';
import { errorMessage } from '../../utils/describe.js';
import { CONTROL_READ_FAILED, CONTROL_SUPERSEDED, CONTROL_WRITE_FAILED } from '../scheduling.messages.js';

/** How often an instance reads the shared state (a GET of its version when nothing changed). */
export const CONTROL_POLL_MS = 250;

/** A version no store reports: the next poll reads the whole state. */
const FORCE_READ = -1;

type Store = Required<Pick<JobLock, 'setControl' | 'control'>>;

/** The store's control methods, when it has both. */
export function controlStore(lock: JobLock | undefined): Store | undefined {
  return lock && typeof lock.setControl === 'function' && typeof lock.control === 'function'
    ? (lock as Store)
    : undefined;
}

/** How a change of the shared state is applied to this instance's job (by the orchestrator). */
export interface ControlTarget {
  /** false when this instance has no such job (another version of the app, or its kind switched off here). */
  has(job: string): boolean;
  pause(job: string, paused: boolean): void;
  /** A schedule set by `reschedule()` elsewhere, with the configured schedule it was set over. */
  reschedule(job: string, schedule: NonNullable<JobControlChange['schedule']>): void;
}

/**
 * Pause state and runtime schedules shared by the cluster through the lock store. A local change applies here at
 * once and is written to the store (a pause that could not be written is retried at every poll); every instance
 * polls the store's version every `CONTROL_POLL_MS` and applies what changed since it last looked. Internal.
 */
export class ClusterControl {
  #version: number | null = null;
  /** The stored state as this instance last saw it: a change is applied once, when it appears. */
  #seen = new Map<string, JobControlChange>();
  /**
   * Pause writes not stored yet, per job (the latest call wins), with the time of the call: retried at every poll as
   * late writes, which the store refuses once another instance stored a later call's state.
   */
  readonly #pending = new Map<string, { paused: boolean; at: number }>();
  /** Jobs whose late pause write the store refused: the next read applies their stored state, also at boot. */
  readonly #adopt = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #polling: Promise<void> | undefined;
  #readFailing = false;
  #writeFailing = false;
  #stopped = false;

  constructor(
    private readonly store: Store,
    private readonly target: ControlTarget,
    private readonly timeout: number,
    private readonly logger: LoggerService,
  ) {}

  /**
   * Reads the stored state once and applies it (a paused job pauses; a stored schedule applies), and polls from now
   * on. A store that fails does not fail the boot: the poll applies the state once the store answers.
   */
  start(): Promise<void> {
    this.#timer = setInterval(() => void this.poll(this.#version === null), CONTROL_POLL_MS);
    this.#timer.unref?.();
    return this.poll(true);
  }

  stop(): void {
    this.#stopped = true;
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** `pause()`/`resume()` on this instance: already applied here; stored for the others (retried until stored). */
  setPaused(job: string, paused: boolean): void {
    // This instance's state is now `paused`: a stored state that differs from it (another instance's later call)
    // must apply here, also when it equals what this instance read before its own call.
    this.#seen.set(job, { ...this.#seen.get(job), paused });
    const entry = { paused, at: Date.now() };
    this.#pending.set(job, entry);
    void this.#flush(job, entry, false);
  }

  /** `reschedule()`: stored first (rejects when the store fails), the caller then applies it here. */
  async setSchedule(job: string, schedule: NonNullable<JobControlChange['schedule']>): Promise<void> {
    // The store refuses the write past the deadline: a rejected reschedule() must not land later, unseen.
    const deadline = Date.now() + this.timeout;
    // As for pause(): a later schedule stored by another instance applies here even if this instance saw it before
    // (set first, so that a poll answering while the write is on its way compares with it too).
    const before = this.#seen.get(job);
    const seen = { ...before, schedule };
    this.#seen.set(job, seen);
    const write = Promise.resolve().then(() => this.store.setControl(job, { schedule }, deadline));
    try {
      await withTimeout(write, this.timeout, () => new LockTimeoutError('setControl', this.timeout));
    } catch (error) {
      // Not applied here: a later store of this same schedule (a retry on another instance) must still apply.
      if (this.#seen.get(job) === seen) {
        if (before === undefined) this.#seen.delete(job);
        else this.#seen.set(job, before);
      }
      throw error;
    }
  }

  /** One poll: pending writes, then the state if its version moved. Never rejects. */
  poll(boot = false): Promise<void> {
    if (this.#polling) return this.#polling;
    // A custom store may answer anything: a poll logs what went wrong, it never rejects.
    this.#polling = this.#poll(boot)
      .catch((error: unknown) => this.#readFailed(error))
      .finally(() => (this.#polling = undefined));
    return this.#polling;
  }

  async #poll(boot: boolean): Promise<void> {
    for (const [job, entry] of [...this.#pending]) await this.#flush(job, entry, true);
    let state: JobControlState | null;
    try {
      state = await this.#bounded('control', () => this.store.control(this.#version));
    } catch (error) {
      return this.#readFailed(error);
    }
    if (
      state !== null &&
      (typeof state !== 'object' || !(state.jobs instanceof Map) || typeof state.version !== 'number')
    ) {
      throw new TypeError('control() must resolve null or { version: number, jobs: Map }');
    }
    this.#readFailing = false;
    if (state === null || this.#stopped) return;
    this.#version = state.version;
    for (const [job, now] of state.jobs) {
      if (now === null || typeof now !== 'object') continue;
      const before = this.#seen.get(job);
      this.#seen.set(job, now);
      // A pause not stored yet is this instance's latest word on the job: the stored state is older.
      if (!this.target.has(job)) continue;
      const adopt = this.#adopt.delete(job);
      if (now.paused !== undefined && now.paused !== before?.paused && !this.#pending.has(job)) {
        // At boot only a stored pause applies: a stored resume does not start a job disabled by configuration.
        // A job whose late write was refused takes the stored state whatever it is.
        if (!boot || now.paused || adopt) this.target.pause(job, now.paused);
      }
      const s = now.schedule;
      if (s && (before?.schedule?.value !== s.value || before.schedule.base !== s.base)) this.target.reschedule(job, s);
    }
  }

  #readFailed(error: unknown): void {
    if (!this.#readFailing) this.logger.warn(CONTROL_READ_FAILED(errorMessage(error)));
    this.#readFailing = true;
  }

  /** Writes a pause state; `late`: a retry, which the store refuses when a later call's state is stored. */
  async #flush(job: string, entry: { paused: boolean; at: number }, late: boolean): Promise<void> {
    let stored: void | boolean;
    try {
      stored = await this.#bounded('setControl', () =>
        // The first try is late too if the store only runs it after this instance gave up on it (queued while
        // Redis was away): `lateAfter`.
        this.store.setControl(job, {
          paused: entry.paused,
          pausedAt: entry.at,
          late,
          lateAfter: entry.at + this.timeout,
        }),
      );
    } catch (error) {
      if (!this.#writeFailing) this.logger.warn(CONTROL_WRITE_FAILED(job, errorMessage(error)));
      this.#writeFailing = true;
      return;
    }
    this.#writeFailing = false;
    // A later pause()/resume() of the job replaced this one meanwhile: that one is still to be written.
    if (this.#pending.get(job) !== entry) return;
    this.#pending.delete(job);
    if (stored === false) {
      // Another instance stored a later call while this one could not write: its state is the cluster's. Read the
      // whole state again and apply the job's stored pause state here, whatever this instance saw before.
      this.logger.warn(CONTROL_SUPERSEDED(job, entry.paused));
      this.#seen.delete(job);
      this.#adopt.add(job);
      this.#version = FORCE_READ;
    }
  }

  #bounded<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return withTimeout(Promise.resolve().then(call), this.timeout, () => new LockTimeoutError(operation, this.timeout));
  }
}
