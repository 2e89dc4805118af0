import type { SupervisorEvent } from '../../supervisor/interfaces/child.interface.js';

/** A message on `nestjs-concurrency:supervisor`: the same object `TaskSupervisor.events` emits. */
export type SupervisorMessage = SupervisorEvent;

/** A message on `nestjs-concurrency:job`: one per run start and end, skipped tick and lock failure. */
export interface JobMessage {
  type: 'started' | 'completed' | 'failed' | 'skipped' | 'lock-failed' | 'cancelled' | 'paused';
  job: string;
  kind: 'cron' | 'interval' | 'timeout';
  /**
   * Why a tick was skipped: the previous run still going (`'overlap'`), on another instance (`'cluster-overlap'`),
   * another instance took the tick (`'other-instance'`), the lock did not answer (`'lock-failed'`), the job was
   * paused while its tick waited for the lock (`'paused'`), or the supervisor refused the run (`'refused'`).
   * On `paused` (the job paused itself, `pauseAfterFailures`): `'failures'`. `cancelled`: a run aborted by a newer
   * tick (`overlap: 'cancel-previous'`) ended.
   */
  reason?: 'overlap' | 'cluster-overlap' | 'other-instance' | 'lock-failed' | 'paused' | 'refused' | 'failures';
  /** On `completed` and `failed`: how long the run took (for a timeout: until its timeout). */
  durationMs?: number;
  /** On `failed` and `lock-failed`. */
  error?: unknown;
}

/** A message on `nestjs-concurrency:fan-out`: a `map`/`settle`/`stream` call's start and end, and each failed item. */
export interface FanOutMessage {
  type: 'call-started' | 'item-failed' | 'item-timeout' | 'call-ended';
  /** The call's id: `map-<n>`, `settle-<n>` or `stream-<n>` (one sequence per application). */
  call: string;
  /** On `item-failed` and `item-timeout`: the input's index, and the reason. */
  index?: number;
  error?: unknown;
  /** On `call-ended`: items settled, of which failed and timed out, and how long the call took. */
  items?: number;
  failures?: number;
  timeouts?: number;
  durationMs?: number;
}

/** A message on `nestjs-concurrency:cache`: one per counted read outcome or error (no key: keys may hold user data). */
export interface CacheMessage {
  type: 'hit' | 'miss' | 'stale' | 'coalesced' | 'error' | 'refresh-error';
}
