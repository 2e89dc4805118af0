import type { JobLease, JobLock } from '../interfaces/job-lock.interface.js';
import { withTimeout } from '../../utils/with-timeout.js';
import { LockTimeoutError } from '../errors/lock-timeout.error.js';

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
const EXTEND = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
return 0`;

const PEEK = `return redis.call('exists', KEYS[1])`;
const GET = `return redis.call('get', KEYS[1])`;

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
    const reply = await this.#call('lastTick', this.client.eval(GET, 1, `${this.#prefix}last-tick:${job}`));
    if (reply === null || reply === undefined) return null;
    const at = Number(reply);
    return Number.isFinite(at) ? at : null;
  }

  async recordTick(job: string, at: number): Promise<void> {
    await this.#call('recordTick', this.client.eval(RECORD_TICK, 1, `${this.#prefix}last-tick:${job}`, String(at)));
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
