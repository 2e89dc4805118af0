import { Logger } from '@nestjs/common';
import type { Keyv } from 'keyv';
import {
  EVICT_CHANNEL,
  FLIGHT_CHANNEL,
  LEASE_KEY_PREFIX,
  STORE_RETRY_AFTER,
  TAG_KEY_PREFIX,
} from './caching.constants.js';
import {
  EVICT_PUBLISH_FAILED,
  EVICT_SUBSCRIBE_FAILED,
  REDIS_CLOSED,
  REDIS_SKIPPED,
  REDIS_TIMEOUT,
} from './caching.messages.js';
import { withTimeout } from '../utils/with-timeout.js';
import { isEnvelope } from './cache-envelope.js';
import { Breaker, StoreTimeoutError } from './breaker.js';

interface RedisLikeClient {
  isOpen?: boolean;
  duplicate(): RedisLikeClient;
  connect(): Promise<unknown>;
  publish(channel: string, message: string): Promise<unknown>;
  subscribe(channel: string, listener: (message: string) => void): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  exists(key: string): Promise<number>;
  set(
    key: string,
    value: string,
    options: { condition: 'NX'; expiration: { type: 'PX'; value: number } },
  ): Promise<string | null>;
  on(event: 'error', listener: (error: unknown) => void): unknown;
  on(event: 'ready' | 'end' | 'reconnecting', listener: () => void): unknown;
  destroy?: () => void;
  disconnect?: () => Promise<void>;
}

interface KeyvRedisLike {
  client: RedisLikeClient;
  namespace?: string;
  getClient(): Promise<RedisLikeClient>;
  createKeyPrefix?(key: string, namespace: string | undefined): string;
}

/** What Keyv reads and writes: the value with its absolute expiry (written with the writer's clock). */
interface KeyvData {
  value: unknown;
  expires?: number;
}

/** A key's value and its remaining lifetime in Redis, in one call. */
const GET_WITH_PTTL = `return {redis.call('GET', KEYS[1]), redis.call('PTTL', KEYS[1])}`;

/**
 * For a `@keyv/redis` store, a read of `key` whose expiry is Redis's own remaining TTL (PTTL) on this instance's clock,
 * instead of the absolute expiry Keyv stored with the writer's clock: with clocks that disagree, Keyv would drop (and
 * delete) live entries on an instance whose clock is ahead, and an instance whose clock is behind would keep its copy
 * too long. An envelope's expiry is set the same way. Undefined for other stores (and with Keyv compression). Internal.
 */
export function redisReader(keyv: Keyv): ((key: string) => Promise<KeyvData | undefined>) | undefined {
  const adapter = redisAdapterOf(keyv);
  const k = keyv as unknown as {
    _getKeyPrefix?: (key: string) => string;
    opts?: { compression?: unknown };
    deserialize?: (data: string) => KeyvData | undefined | Promise<KeyvData | undefined>;
  };
  if (adapter === undefined || typeof adapter.createKeyPrefix !== 'function' || typeof k._getKeyPrefix !== 'function') {
    return undefined;
  }
  if (k.opts?.compression !== undefined) return undefined;
  return async (key) => {
    const redisKey = (adapter.createKeyPrefix as NonNullable<KeyvRedisLike['createKeyPrefix']>).call(
      adapter,
      (k._getKeyPrefix as (key: string) => string).call(keyv, key),
      adapter.namespace,
    );
    const client = await adapter.getClient();
    const reply = (await client.eval(GET_WITH_PTTL, { keys: [redisKey], arguments: [] })) as [unknown, unknown];
    const [raw, pttl] = Array.isArray(reply) ? reply : [undefined, undefined];
    if (raw === null || raw === undefined || typeof pttl !== 'number' || pttl === -2) return undefined;
    const deserialize = k.deserialize;
    const data = (typeof raw === 'string' && typeof deserialize === 'function' ? await deserialize(raw) : raw) as
      KeyvData | undefined;
    if (data === undefined || data === null || typeof data !== 'object') return undefined;
    const expires = pttl >= 0 ? Date.now() + pttl : undefined;
    const value = data.value;
    if (expires !== undefined && isEnvelope(value)) value.e = expires;
    return { value, expires };
  };
}

/** A call not made because Redis failed less than `STORE_RETRY_AFTER` ms ago. */
class RedisSkipped extends Error {}

function redisAdapterOf(keyv: Keyv): KeyvRedisLike | undefined {
  const adapter = (keyv as unknown as { store?: Partial<KeyvRedisLike> }).store;
  return adapter &&
    typeof adapter.getClient === 'function' &&
    typeof (adapter.client as RedisLikeClient | undefined)?.duplicate === 'function'
    ? (adapter as KeyvRedisLike)
    : undefined;
}

/**
 * Whether `keyv` is a `@keyv/redis` store (its adapter has `getClient()` and a client that can `duplicate()`, for the
 * subscriber): the cache then keeps tags, evictions and the cluster single flight on that Redis. Internal.
 */
export function isRedisStore(keyv: Keyv): boolean {
  return redisAdapterOf(keyv) !== undefined;
}

/**
 * A "lease released" message: the key, the releasing instance, and the stored computation's sequence if any; `u: 1`:
 * a value was computed but could not be stored (the waiters compute at once instead of taking the lease in turn).
 */
export interface FlightMessage {
  o: string;
  k: string;
  s?: number;
  u?: 1;
}

/**
 * A tag is a sorted set: member = cache key, score = the time (ms, Redis's clock) until which that entry may live.
 * Adding prunes members past their time and makes the set itself expire with its last member: no lost members across
 * instances (one atomic script, no read-modify-write), no growth beyond the entries alive. Times are Redis's own
 * (TIME), with the member's remaining lifetime as the argument: instances whose clocks disagree do not prune each
 * other's members early.
 */
const TAG_ADD = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], 'GT', now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
if last[2] then redis.call('PEXPIREAT', KEYS[1], last[2]) end
return 1`;

/**
 * Releases a key's lease if the caller still owns it (compare-and-set on its random token, never a blind DEL), and
 * tells every instance that it was released (the waiters read the stored value, or take the lease), in one call.
 */
const LEASE_RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then redis.call('del', KEYS[1]) end
redis.call('publish', ARGV[2], ARGV[3])
return 1`;

/** Takes every member of a tag and deletes the set, atomically. */
const TAG_TAKE = `local members = redis.call('ZRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return members`;

/**
 * What the cache does on Redis itself, when one of the L2 stores is a `@keyv/redis` store (reusing its client):
 * publishes evicted keys and drops the keys other instances evicted from this instance's L1 (a duplicate client
 * subscribes), and keeps tag memberships in native sorted sets. Every call has the store timeout and the stores'
 * breaker (skipped for a second after a failure). Internal.
 */
export class RedisLink {
  private subscriber?: RedisLikeClient;
  private subscribedOnce = false;
  /**
   * The subscriber listens to the channels now: false before SUBSCRIBE completes at boot and while it reconnects, when
   * a release message would be lost (a follower then does not wait for one).
   */
  subscribed = false;
  private closed = false;
  private readonly breaker = new Breaker(STORE_RETRY_AFTER);
  private readonly logger = new Logger('CacheService');
  private readonly tagPrefix: string;
  private readonly leasePrefix: string;
  private readonly flightChannel: string;
  /** Evictions of this app only: two apps on one Redis (distinct namespaces) never drop each other's L1 entries. */
  private readonly evictChannel: string;
  private flight?: { onMessage: (message: FlightMessage) => void; onLost: () => void };

  private constructor(
    private readonly adapter: KeyvRedisLike,
    private readonly origin: string,
    private readonly timeout: number,
    private readonly onRemote: (keys: string[]) => void,
    private readonly onError: (error: unknown) => void,
  ) {
    const namespace = adapter.namespace ? `${adapter.namespace}:` : '';
    this.tagPrefix = namespace + TAG_KEY_PREFIX;
    this.leasePrefix = namespace + LEASE_KEY_PREFIX;
    this.flightChannel = namespace + FLIGHT_CHANNEL;
    this.evictChannel = namespace + EVICT_CHANNEL;
  }

  static for(
    stores: Keyv[],
    origin: string,
    timeout: number,
    onRemote: (keys: string[]) => void,
    onError: (error: unknown) => void,
  ): RedisLink | undefined {
    for (const store of stores) {
      const adapter = redisAdapterOf(store);
      if (adapter) return new RedisLink(adapter, origin, timeout, onRemote, onError);
    }
    return undefined;
  }

  /**
   * Before `start()`: also listen to the released leases of the cluster single flight. `onLost`: the subscriber's
   * connection failed (its waiters stop waiting for a message that may never come).
   */
  listenToFlights(onMessage: (message: FlightMessage) => void, onLost: () => void): void {
    this.flight = { onMessage, onLost };
  }

  /** Subscribes in the background: a Redis that is down at boot does not delay or fail boot. */
  start(): void {
    const subscriber = this.adapter.client.duplicate();
    this.subscriber = subscriber;
    const flight = this.flight;
    // Reconnects are retried by the client; failures are counted on use. A waiter for a released lease stops waiting:
    // until subscribed again, the release may be published while nobody here listens.
    const lost = () => {
      this.subscribed = false;
      flight?.onLost();
    };
    subscriber.on('error', lost);
    subscriber.on('end', lost);
    subscriber.on('reconnecting', lost);
    // The client subscribes again as it reconnects, before it is ready.
    subscriber.on('ready', () => {
      if (this.subscribedOnce && !this.closed) this.subscribed = true;
    });
    subscriber
      .connect()
      .then(() =>
        Promise.all([
          subscriber.subscribe(this.evictChannel, (message) => {
            try {
              const { o, k } = JSON.parse(message) as { o: string; k: string[] };
              if (o !== this.origin && Array.isArray(k)) this.onRemote(k);
            } catch {
              // not one of ours
            }
          }),
          flight &&
            subscriber.subscribe(this.flightChannel, (message) => {
              let parsed: FlightMessage;
              try {
                parsed = JSON.parse(message) as FlightMessage;
              } catch {
                return; // not one of ours
              }
              if (typeof parsed?.k === 'string') flight.onMessage(parsed);
            }),
        ]),
      )
      .then(() => {
        if (this.closed) return;
        this.subscribedOnce = true;
        this.subscribed = subscriber.isOpen !== false;
      })
      .catch((error: unknown) => {
        if (this.closed) return;
        this.onError(error);
        this.logger.warn(EVICT_SUBSCRIBE_FAILED);
      });
  }

  /** Tells the other instances to drop `keys` from their L1. Never rejects: a failure is counted and logged. */
  async publish(keys: string[]): Promise<void> {
    if (keys.length === 0) return;
    try {
      await this.run('publish', (client) =>
        client.publish(this.evictChannel, JSON.stringify({ o: this.origin, k: keys })),
      );
    } catch (error) {
      if (!(error instanceof RedisSkipped)) this.logger.warn(EVICT_PUBLISH_FAILED);
    }
  }

  /** Adds `key` to the set of `tag`, alive until `until` (epoch ms). Rejects on failure (counted). */
  async addTag(tag: string, key: string, until: number): Promise<void> {
    await this.run('tag', (client) =>
      client.eval(TAG_ADD, {
        keys: [this.tagPrefix + tag],
        // the remaining lifetime, in whole ms (PEXPIREAT needs an integer); Redis adds its own time
        arguments: [key, String(Math.max(1, Math.ceil(until - Date.now())))],
      }),
    );
  }

  /** Removes the set of `tag` and returns its members. Rejects on failure (counted). */
  async takeTag(tag: string): Promise<string[]> {
    const members = await this.run('evictTags', (client) =>
      client.eval(TAG_TAKE, { keys: [this.tagPrefix + tag], arguments: [] }),
    );
    return Array.isArray(members) ? members.map(String) : [];
  }

  /**
   * Takes the lease of `key` for `ttl` ms with a random `token` (SET NX PX): true if taken, false if another holder has
   * it. Rejects when Redis fails or is slower than the store timeout (counted), or was failing a moment ago.
   */
  async claim(key: string, token: string, ttl: number): Promise<boolean> {
    const reply = await this.run('lease', (client) =>
      client.set(this.leasePrefix + key, token, { condition: 'NX', expiration: { type: 'PX', value: Math.ceil(ttl) } }),
    );
    return reply === 'OK';
  }

  /** Whether some instance holds the lease of `key` now. Rejects when Redis fails (counted), or failed a moment ago. */
  async held(key: string): Promise<boolean> {
    return (await this.run('lease', (client) => client.exists(this.leasePrefix + key))) > 0;
  }

  /**
   * Releases the lease of `key` if `token` still owns it, and publishes the release (`stored`: the sequence of the
   * value just stored, if any). Never rejects: on failure the lease expires by itself, and the waiters stop waiting then.
   */
  async release(key: string, token: string, stored: number | undefined, unstored = false): Promise<void> {
    const message: FlightMessage =
      stored !== undefined
        ? { o: this.origin, k: key, s: stored }
        : unstored
          ? { o: this.origin, k: key, u: 1 }
          : { o: this.origin, k: key };
    try {
      // Tried even while the breaker is open (a failure a moment ago): a lease left to expire keeps the other
      // instances waiting, and their stale copies in place, until then.
      await this.run(
        'lease release',
        (client) =>
          client.eval(LEASE_RELEASE, {
            keys: [this.leasePrefix + key],
            arguments: [token, this.flightChannel, JSON.stringify(message)],
          }),
        true,
      );
    } catch {
      // counted by run(); the lease's own expiry ends it
    }
  }

  close(): void {
    this.closed = true;
    this.subscribed = false;
    const subscriber = this.subscriber;
    this.subscriber = undefined;
    if (!subscriber) return;
    try {
      if (subscriber.destroy) subscriber.destroy();
      else void subscriber.disconnect?.().catch(() => undefined);
    } catch {
      // already closed
    }
  }

  private async run<T>(what: string, command: (client: RedisLikeClient) => Promise<T>, always = false): Promise<T> {
    // After close(), the stores are disconnected: a command would reconnect the client.
    if (this.closed) throw new RedisSkipped(REDIS_CLOSED(what));
    if (this.breaker.open && !always) {
      const error = new RedisSkipped(REDIS_SKIPPED(what, STORE_RETRY_AFTER));
      this.onError(error);
      throw error;
    }
    try {
      return await withTimeout(
        this.adapter.getClient().then(command),
        this.timeout,
        () => new StoreTimeoutError(REDIS_TIMEOUT(what, this.timeout)),
      );
    } catch (error) {
      this.breaker.trip();
      this.onError(error);
      throw error;
    }
  }
}
