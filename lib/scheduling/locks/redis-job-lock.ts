import type { CatchUpState, JobLease, JobLock } from '../interfaces/job-lock.interface.js';
import type { JobControlChange, JobControlState, JobRun } from '../interfaces/job-run.interface.js';
import { withTimeout } from '../../utils/with-timeout.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';
import { CONTROL_TOO_LATE } from '../scheduling.messages.js';

/** The part of an ioredis client `RedisJobLock` uses (ioredis' `Redis` and `Cluster` fit). */
export interface RedisJobLockClient {
  /** Runs a Lua script (ioredis `eval`). */
  eval(script: string, numKeys: number, ...args: (string | number)[]): Promise<unknown>;
}

/** Options of `new RedisJobLock(client, options)`. */
export interface RedisJobLockOptions {
  /**
   * Prefix of every key. Default `{nestjs-concurrency:jobs}:`; the braces are a Redis Cluster hash tag, so a lease
   * key and the fencing counter live in one slot.
   */
  prefix?: string;
  /**
   * How long one Redis call may take, in ms, before it rejects with `LockTimeoutError`. Default: none of its own; a
   * job bounds every lock call with its `lock.timeout` (default 1,000 ms, then the tick is skipped), which is the one
   * to tune. Set this only to use the lock outside jobs.
   */
  timeout?: number;
}

// Takes the tick's key only if nobody holds it, with a fencing token from INCR: one round trip, atomic.
const ACQUIRE = `if redis.call('exists', KEYS[1]) == 1 then return false end
local token = redis.call('incr', KEYS[2])
redis.call('set', KEYS[1], token, 'PX', ARGV[1])
return token`;
// Compare-and-set on the owner's token: never a blind DEL or PEXPIRE.
const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0`;
// The last run tick of a job only moves forward: two instances recording ticks out of order keep the later one.
const RECORD_TICK = `local current = tonumber(redis.call('get', KEYS[1]))
if current == nil or current < tonumber(ARGV[1]) then redis.call('set', KEYS[1], ARGV[1]) end
return 1`;
// A catch-up in progress: two fields that only move forward.
const RECORD_CATCH_UP = `for i, field in ipairs({'done', 'until'}) do
  if ARGV[i] ~= '' then
    local current = tonumber(redis.call('hget', KEYS[1], field))
    if current == nil or current < tonumber(ARGV[i]) then redis.call('hset', KEYS[1], field, ARGV[i]) end
  end
end
return 1`;
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0`;

const PEEK = `return redis.call('exists', KEYS[1])`;
const GET = `return redis.call('get', KEYS[1])`;
// The history: a capped list per job, newest first; LPUSH and LTRIM in one atomic script.
const ADD_RUN = `redis.call('lpush', KEYS[1], ARGV[1])
redis.call('ltrim', KEYS[1], 0, tonumber(ARGV[2]) - 1)
return 1`;
// The shared state: one hash field per job for each kind of change, and a version bumped with every change.
// A write given a deadline (epoch ms) that Redis only runs after it (it was queued, the caller gave up) changes nothing.
// A late pause state (ARGV[7] = '1', or run after ARGV[8]) changes nothing when the job's stored one comes from a later call (KEYS[4] keeps
// the newest call time per job): -2. A missing version (a new Redis, or one that lost its data) starts at a random
// number (ARGV[5]), so an instance that knew the old count cannot mistake the new state for the one it has seen.
const SET_CONTROL = `if ARGV[4] ~= '' then
  local t = redis.call('time')
  if tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[4]) then return -1 end
end
local at = ARGV[6] ~= '' and redis.call('hget', KEYS[4], ARGV[1]) or false
local late = ARGV[7] == '1'
if not late and ARGV[8] ~= '' and at then
  local t = redis.call('time')
  late = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) > tonumber(ARGV[8])
end
if late and at and tonumber(at) > tonumber(ARGV[6]) then return -2 end
if ARGV[2] ~= '' then redis.call('hset', KEYS[1], ARGV[1], ARGV[2]) end
if ARGV[3] ~= '' then redis.call('hset', KEYS[2], ARGV[1], ARGV[3]) end
if ARGV[6] ~= '' and (not at or tonumber(at) < tonumber(ARGV[6])) then redis.call('hset', KEYS[4], ARGV[1], ARGV[6]) end
if redis.call('exists', KEYS[3]) == 0 then redis.call('set', KEYS[3], ARGV[5]) end
return redis.call('incr', KEYS[3])`;
// One round trip per poll: the version only, unless it moved.
const CONTROL = `local v = redis.call('get', KEYS[3]) or '0'
if v == ARGV[1] then return {v} end
return {v, redis.call('hgetall', KEYS[1]), redis.call('hgetall', KEYS[2])}`;

/** A stored run back to a `JobRun`; undefined for an entry that is not one (written by something else). */
function parseRun(text: unknown): JobRun | undefined {
  try {
    const o = JSON.parse(String(text)) as Record<string, unknown>;
    const outcome = o.outcome;
    if (outcome !== 'completed' && outcome !== 'failed' && outcome !== 'timeout') return undefined;
    if (typeof o.scheduledAt !== 'number' || typeof o.startedAt !== 'number') return undefined;
    const run: JobRun = {
      scheduledAt: new Date(o.scheduledAt),
      startedAt: new Date(o.startedAt),
      durationMs: Number(o.durationMs),
      outcome,
      instance: String(o.instance),
    };
    if (typeof o.error === 'string') run.error = o.error;
    return run;
  } catch {
    return undefined;
  }
}

/** HGETALL's flat [field, value, ...] reply as pairs. */
function pairs(reply: unknown): Array<[string, string]> {
  const flat = Array.isArray(reply) ? reply : [];
  const out: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([String(flat[i]), String(flat[i + 1])]);
  return out;
}

/**
 * A `JobLock` on Redis (ioredis): one instance of a cluster takes each tick. The lease is kept until its TTL expires
 * (a late instance must not take the same tick), extended by a run that outlives it; its token comes from `INCR`.
 * A job bounds every call with its `lock.timeout`: a down or slow Redis makes the tick skip, never run twice.
 *
 * Give the client an `'error'` listener and fail-fast settings, e.g.
 * `new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false })`.
 */
export class RedisJobLock implements JobLock {
  readonly #prefix: string;
  readonly #timeout: number | undefined;

  constructor(
    private readonly client: RedisJobLockClient,
    options: RedisJobLockOptions = {},
  ) {
    if (!client || typeof client.eval !== 'function') {
      throw new TypeError('RedisJobLock needs an ioredis client (new Redis(url)) as its first argument.');
    }
    const { timeout } = options;
    if (timeout !== undefined && (!(timeout > 0) || !Number.isFinite(timeout))) {
      throw new TypeError(`RedisJobLock option "timeout" must be a positive number of ms, got ${String(timeout)}.`);
    }
    this.#prefix = options.prefix ?? '{nestjs-concurrency:jobs}:';
    this.#timeout = timeout;
  }

  async acquire(key: string, ttlMs: number): Promise<JobLease | null> {
    const redisKey = this.#prefix + key;
    const reply = await this.#call(
      'acquire',
      this.client.eval(ACQUIRE, 2, redisKey, `${this.#prefix}fencing`, Math.ceil(ttlMs)),
    );
    if (reply === null || reply === undefined) return null;
    const token = Number(reply);
    return {
      token,
      release: async () => {
        await this.#call('release', this.client.eval(RELEASE, 1, redisKey, String(token)));
      },
      extend: async (ms: number) =>
        Number(await this.#call('extend', this.client.eval(EXTEND, 1, redisKey, String(token), Math.ceil(ms)))) === 1,
    };
  }

  async peek(key: string): Promise<boolean> {
    return Number(await this.#call('peek', this.client.eval(PEEK, 1, this.#prefix + key))) === 1;
  }

  /** The last run tick of `job`, kept in Redis without expiry (one small key per job with `catchUp`). */
  async lastTick(job: string): Promise<number | null> {
    const reply = await this.#call('lastTick', this.client.eval(GET, 1, this.#key('last-tick', job)));
    if (reply === null || reply === undefined) return null;
    const at = Number(reply);
    return Number.isFinite(at) ? at : null;
  }

  async recordTick(job: string, at: number): Promise<void> {
    await this.#call('recordTick', this.client.eval(RECORD_TICK, 1, this.#key('last-tick', job), String(at)));
  }

  /** The catch-up in progress for `job` (hash `catch-up:<job>`, no expiry). */
  async catchUpState(job: string): Promise<CatchUpState | null> {
    const reply = await this.#call(
      'catchUpState',
      this.client.eval(`return redis.call('hmget', KEYS[1], 'done', 'until')`, 1, this.#key('catch-up', job)),
    );
    const [done, until] = (Array.isArray(reply) ? reply : []).map((v: unknown) => (v == null ? NaN : Number(v)));
    return Number.isFinite(done) && Number.isFinite(until) ? { done, until } : null;
  }

  async recordCatchUp(job: string, state: Partial<CatchUpState>): Promise<void> {
    const arg = (v: number | undefined) => (v === undefined ? '' : String(v));
    await this.#call(
      'recordCatchUp',
      this.client.eval(RECORD_CATCH_UP, 1, this.#key('catch-up', job), arg(state.done), arg(state.until)),
    );
  }

  /** The job's run history: a list capped at `keep`, shared by every instance (`JobRegistry.history()`). */
  async addRun(job: string, run: JobRun, keep: number): Promise<void> {
    const entry: Record<string, unknown> = {
      scheduledAt: run.scheduledAt.getTime(),
      startedAt: run.startedAt.getTime(),
      durationMs: run.durationMs,
      outcome: run.outcome,
      instance: run.instance,
    };
    if (run.error !== undefined) entry.error = run.error;
    await this.#call('addRun', this.client.eval(ADD_RUN, 1, this.#historyKey(job), JSON.stringify(entry), keep));
  }

  async runs(job: string, limit: number): Promise<JobRun[]> {
    const reply = await this.#call(
      'runs',
      this.client.eval(
        `return redis.call('lrange', KEYS[1], 0, tonumber(ARGV[1]) - 1)`,
        1,
        this.#historyKey(job),
        limit,
      ),
    );
    const runs: JobRun[] = [];
    for (const text of Array.isArray(reply) ? reply : []) {
      const run = parseRun(text);
      if (run) runs.push(run);
    }
    return runs;
  }

  /** Pause state and runtime schedules shared by every instance (`pause()`, `resume()`, `reschedule()`). */
  async setControl(job: string, change: JobControlChange, deadline?: number): Promise<boolean> {
    const paused = change.paused === undefined ? '' : change.paused ? '1' : '0';
    const schedule = change.schedule === undefined ? '' : JSON.stringify(change.schedule);
    const at = paused !== '' && Number.isFinite(change.pausedAt) ? String(Math.trunc(change.pausedAt!)) : '';
    const reply = await this.#call(
      'setControl',
      this.client.eval(
        SET_CONTROL,
        4,
        ...this.#controlKeys(),
        `${this.#prefix}control:paused-at`,
        job,
        paused,
        schedule,
        deadline ?? '',
        // the first version of a new count: random below 2^40, far from any count a live cluster reaches
        Math.floor(Math.random() * 2 ** 40),
        at,
        change.late && at !== '' ? '1' : '',
        at !== '' && Number.isFinite(change.lateAfter) ? String(Math.trunc(change.lateAfter!)) : '',
      ),
    );
    if (Number(reply) === -1) throw new Error(CONTROL_TOO_LATE(job));
    return Number(reply) !== -2;
  }

  async control(known: number | null): Promise<JobControlState | null> {
    const reply = (await this.#call(
      'control',
      this.client.eval(CONTROL, 3, ...this.#controlKeys(), known === null ? '' : String(known)),
    )) as unknown[];
    if (!Array.isArray(reply) || reply.length < 3) return null;
    const jobs = new Map<string, JobControlChange>();
    const state = (job: string) => {
      let s = jobs.get(job);
      if (!s) jobs.set(job, (s = {}));
      return s;
    };
    for (const [job, value] of pairs(reply[1])) state(job).paused = value === '1';
    for (const [job, value] of pairs(reply[2])) {
      try {
        const schedule = JSON.parse(value) as JobControlChange['schedule'];
        if (schedule && (typeof schedule.value === 'string' || typeof schedule.value === 'number')) {
          state(job).schedule = { value: schedule.value, base: schedule.base };
        }
      } catch {
        // not ours: ignored
      }
    }
    return { version: Number(reply[0]), jobs };
  }

  #historyKey(job: string): string {
    return this.#key('history', job);
  }

  /**
   * A per-job key. The name is encoded (no `@`, no `:`): a job named like another job's key (`x@running`,
   * `history:x`) can never land on it, nor on a lease key (`<job>@<tick>`, which always holds an `@`).
   */
  #key(kind: 'history' | 'last-tick' | 'catch-up', job: string): string {
    return `${this.#prefix}${kind}:${encodeURIComponent(job)}`;
  }

  #controlKeys(): [string, string, string] {
    const p = this.#prefix;
    return [`${p}control:paused`, `${p}control:schedule`, `${p}control:version`];
  }

  /** Resolves once Redis answers a trivial script (`ConcurrencyHealthIndicator` calls it, bounded by a timeout). */
  async ping(): Promise<void> {
    await this.#call('ping', this.client.eval('return 1', 0));
  }

  #call(operation: string, reply: Promise<unknown>): Promise<unknown> {
    const timeout = this.#timeout;
    if (timeout === undefined) return reply;
    return withTimeout(reply, timeout, () => new LockTimeoutError(`${operation} (RedisJobLock)`, timeout));
  }
}
