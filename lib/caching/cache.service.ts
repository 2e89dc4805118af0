import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit, Optional } from '@nestjs/common';
import type { CacheableMemory } from 'cacheable';
import { KeyvCacheableMemory } from 'cacheable';
import { type Cache, createCache } from 'cache-manager';
import { randomBytes } from 'node:crypto';
import { Keyv } from 'keyv';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import { type CacheEnvelope, isEnvelope, isNotCacheable, remainingTtl } from './cache-envelope.js';
import {
  DEFAULT_ISOLATED_TIMEOUT,
  L1_CHECK_INTERVAL,
  REFRESH_BACKOFF_MAX,
  REFRESH_BACKOFF_MIN,
  STORE_RETRY_AFTER,
  TAG_KEY_PREFIX,
} from './caching.constants.js';
import {
  REFRESH_FAILED,
  REFRESH_TIMED_OUT,
  STORE_DEFAULT_NAMESPACE,
  STORE_FAILED,
  STORE_RECOVERED,
  TAG_INDEX_FAILED,
  TTL_INVALID,
  VALUE_NOT_STORED,
} from './caching.messages.js';
import { FanOut } from '../fan-out/fan-out.service.js';
import { SupervisorRegistry } from '../supervisor/supervisor.registry.js';
import { checkTimeoutMs } from '../supervisor/utils/timeout.util.js';
import { IsolatedTimeoutError } from './errors/isolated-timeout.error.js';
import { GuardedStore } from './guarded-store.js';
import { refusal } from './store-admission.js';
import type {
  CacheServiceStats,
  CacheStats,
  IsolatedOptions,
  MethodCacheStats,
} from './interfaces/cached-options.interface.js';
import { createCacheCounters } from '../observability/cache-counters.js';
import { ClusterFlight, type FlightCall, isA, LeaderValue, RefreshedElsewhere } from './cluster-flight.js';
import { type FlightMessage, isRedisStore, RedisLink } from './redis-link.js';
import type { ResponseMeta } from './response-meta.js';
import { MemoryTagIndex, StoreTagIndex, type TagIndex } from './tag-index.js';
import { describeValue, errorMessage, errorStack } from '../utils/describe.js';

/** A miss takes any value another instance stored. */
const acceptAny = (): boolean => true;

/** A TTL a cache entry may have: a finite number of ms > 0 (Keyv reads 0 as "never expires"). */
export function isValidTtl(ttl: unknown): ttl is number {
  return typeof ttl === 'number' && ttl > 0 && Number.isFinite(ttl);
}

function checkTtl(where: string, ttl: unknown): number {
  if (!isValidTtl(ttl)) throw new TypeError(TTL_INVALID(where, ttl));
  return ttl;
}

/** Keyv's namespace when none is given. */
const KEYV_DEFAULT_NAMESPACE = 'keyv';

/**
 * A store other processes may use too (not one of this process's Maps) whose keys carry Keyv's default namespace or
 * none: two apps on one server would share every key.
 */
function sharedWithDefaultNamespace(keyv: Keyv): boolean {
  const namespace = keyv.namespace;
  if (namespace && namespace !== KEYV_DEFAULT_NAMESPACE) return false;
  const store: unknown = keyv.store;
  return !(store instanceof Map) && !(store instanceof KeyvCacheableMemory);
}

interface Lock {
  waiters: Array<{ grant: () => void; timer: NodeJS.Timeout | undefined }>;
}

/**
 * The cache: a bounded in-memory LRU (L1) in front of the configured Keyv stores (L2), on cache-manager's
 * `createCache` + `wrap` (one computation per key under concurrency, refresh ahead). The same instance is
 * injectable as `CACHE_MANAGER` of `@nestjs/cache-manager`.
 */
@Injectable()
export class CacheService implements OnModuleInit, OnApplicationShutdown {
  /** The cache-manager instance (also provided as `CACHE_MANAGER`). */
  readonly cache: Cache;
  /** Default TTL in ms (`forRoot({ cache: { ttl } })`). */
  readonly defaultTtl: number;
  /** @internal The L1 entries, read synchronously on the hit path. */
  readonly memory: CacheableMemory;
  /** @internal Identifies this instance in envelopes and published evictions. */
  readonly origin = randomBytes(6).toString('base64url');
  /** @internal Sequence of computations on this instance. */
  seq = 0;
  /** @internal Mutable counters behind `stats()`. */
  readonly counters: CacheStats = createCacheCounters();
  /** `forRoot({ cache: { singleFlight } })` as resolved: who shares one computation of a key. */
  readonly singleFlight: 'instance' | 'cluster';

  /** @internal This instance's tag memberships (its L1 entries), outside the LRU. */
  readonly localTags = new MemoryTagIndex();

  private readonly guarded: GuardedStore[];
  /** Tag memberships shared with the other instances: Redis sorted sets, else a value in the first L2 store. */
  private readonly sharedTags?: TagIndex;
  private readonly redis?: RedisLink;
  /** The in-memory L1 as a cache-manager store. */
  private readonly l1: Keyv;
  /** The cluster single flight (leases in Redis), with `singleFlight: 'cluster'`. */
  private readonly flight?: ClusterFlight;
  /** Background refreshes running here under a cluster lease, released when the refresh ends. */
  private readonly refreshCalls = new Map<string, FlightCall>();
  /** Keys another instance refreshes now (it holds their lease): no refresh here before `until`, or its release. */
  private readonly remoteRefresh = new Map<string, number>();
  private readonly locks = new Map<string, Lock>();
  private readonly methodCounters = new Map<string, MethodCacheStats>();
  /**
   * Keys a cached method computes now, with their tags: an eviction of the key or of one of its tags while the method
   * runs marks it, and its value (read before the write that caused the eviction) is then not stored.
   */
  private readonly computing = new Map<string, { tags: string[] | undefined; evicted: boolean }>();
  /** Keys whose last background refresh failed: no refresh before `until`; `delay` is the wait that was used. */
  private readonly refreshBackoff = new Map<string, { until: number; delay: number }>();
  /** Keys whose background refresh runs now (from the decision to start it until cache-manager's `refresh` event). */
  private readonly refreshing = new Set<string>();
  private pruneBackoffAt = 1024;
  private readonly logger = new Logger('CacheService');
  private lastRefreshLog = 0;
  private lastTagLog = 0;
  private lastRefusalLog = 0;
  /** Envelopes of `getOrStore` values: written to a store only if its serializer gives them back as they are. */
  private readonly exact = new WeakSet<CacheEnvelope>();

  /** Created by `ConcurrencyModule`: inject it. */
  constructor(
    @Inject(CONCURRENCY_OPTIONS) options: ResolvedConcurrencyOptions,
    @Optional() private readonly supervisors?: SupervisorRegistry,
    @Optional() private readonly fanOut?: FanOut,
  ) {
    const { ttl, maxEntries, stores, storeTimeout, singleFlight, singleFlightWait, maxValueSize } = options.cache;
    this.singleFlight = singleFlight;
    this.defaultTtl = ttl;
    const l1Adapter = new KeyvCacheableMemory({
      lruSize: maxEntries,
      useClone: false,
      checkInterval: L1_CHECK_INTERVAL,
      // One Map: the default 16 shards hash every key (djb2) on every read, the largest cost of a hit.
      storeHashSize: 1,
    });
    this.memory = l1Adapter.store;
    const l1 = new Keyv({ store: l1Adapter, namespace: '' });
    l1.serialize = undefined;
    l1.deserialize = undefined;
    this.l1 = l1;
    this.guarded = stores.map(
      (store, i) =>
        new GuardedStore(
          store,
          i + 1,
          storeTimeout,
          (s, error, first) => this.storeFailed(s, error, first),
          (s) => this.logger.log(STORE_RECOVERED(s.index)),
        ),
    );
    for (const store of this.guarded) {
      store.admit = (value) => refusal(store.keyv, value, this.exactValue(value), maxValueSize);
      store.refused = (s, key, reason) => this.valueRefused(s, key, reason);
    }
    this.cache = createCache({
      stores: [l1, ...(this.guarded as unknown as Keyv[])],
      ttl,
      refreshAllStores: true,
    });
    this.redis = RedisLink.for(
      stores,
      this.origin,
      storeTimeout,
      (keys) => this.dropLocal(keys),
      () => this.counters.errors++,
    );
    if (this.redis !== undefined) this.sharedTags = this.redis;
    const redisStore = this.guarded.find((store) => isRedisStore(store.keyv));
    if (singleFlight === 'cluster' && this.redis !== undefined && redisStore !== undefined) {
      const flight = new ClusterFlight(
        this.redis,
        singleFlightWait,
        (key) => redisStore.read(key),
        () => this.counters.clusterFallbacks++,
      );
      this.flight = flight;
      redisStore.urgent = (key) => flight.leads(key);
      redisStore.onWrite = (key, value, stored) => flight.wrote(key, value, stored);
      this.redis.listenToFlights(
        (message) => this.flightReleased(message),
        () => flight.wakeAll(),
      );
    } else if (this.guarded.length > 0) {
      this.sharedTags = new StoreTagIndex(this.guarded[0], TAG_KEY_PREFIX, (key, fn) => this.isolated(key, fn));
    }
    this.cache.on('refresh', ({ key, error }: { key: string; error?: unknown }) => this.refreshed(key, error));
  }

  /** Nest lifecycle hook. */
  onModuleInit(): void {
    for (const store of this.guarded) {
      if (sharedWithDefaultNamespace(store.keyv)) {
        this.logger.warn(STORE_DEFAULT_NAMESPACE(store.index, store.keyv.namespace));
      }
    }
    this.redis?.start();
  }

  /**
   * Closes the cache once nothing can use it any more: after every supervisor (with the jobs' runs) and every fan-out
   * call has drained, since drained work may read and write the cache. Nest runs `onModuleDestroy` before those
   * drains, so closing there lost their writes and let `@keyv/redis` reconnect (a socket left open after `close()`).
   */
  async onApplicationShutdown(): Promise<void> {
    // The same idempotent drains the registry's and FanOut's own hooks await (FanOut's awaits the supervisors too);
    // whatever they end with, the cache is closed after them.
    await Promise.allSettled([
      ...(this.supervisors?.all().map((supervisor) => supervisor.shutdown()) ?? []),
      this.fanOut?.onApplicationShutdown(),
    ]);
    this.memory.stopIntervalCheck();
    this.memory.clear();
    this.localTags.clear();
    this.refreshBackoff.clear();
    this.refreshing.clear();
    this.remoteRefresh.clear();
    this.redis?.close();
    this.flight?.wakeAll();
    await Promise.all(this.guarded.map((store) => store.disconnect()));
  }

  /**
   * The value under `key`, or `undefined`. Entries written by `@Cached` and `getOrStore` are kept with their origin
   * (to tell a miss from a hit); `get` returns the value itself.
   */
  async get<T = unknown>(key: string): Promise<T | undefined> {
    const value = await this.cache.get<unknown>(key);
    return (isEnvelope(value) ? value.__ncBody : value) as T | undefined;
  }

  /** Stores `value` under `key` for `ttl` ms (default: the module's TTL; a finite number > 0, else a TypeError). */
  async set<T>(key: string, value: T, ttl: number = this.defaultTtl): Promise<T> {
    await this.cache.set(key, value, checkTtl('CacheService.set()', ttl));
    return value;
  }

  /** Deletes `key` here, in the stores, and in the L1 of the other instances (when Redis is an L2 store). */
  async del(key: string): Promise<void> {
    await this.evictKeys([key]);
  }

  /**
   * The value under `key`, or the result of `fn` stored for `ttl` ms (ConCache's `get_or_store`): concurrent calls
   * for one key run `fn` once and all get its result. A rejection is not stored. `ttl` must be a finite number > 0.
   */
  async getOrStore<T>(key: string, fn: () => T | Promise<T>, ttl: number = this.defaultTtl): Promise<T> {
    checkTtl('CacheService.getOrStore()', ttl);
    const start = this.seq;
    let ran = false;
    let call: FlightCall | undefined;
    let value: unknown;
    try {
      value = await this.cache.wrap<unknown>(
        key,
        async () => {
          ran = true;
          const compute = async () => {
            const envelope = this.envelope(await fn(), ttl);
            this.exact.add(envelope);
            return envelope;
          };
          if (this.flight === undefined) return compute();
          call = { refresh: false, accepts: acceptAny };
          return this.computeOnce(key, compute, call);
        },
        remainingTtl(ttl),
      );
    } catch (error) {
      if (isA(error, LeaderValue)) return this.followed(key, error).__ncBody as T;
      throw error;
    } finally {
      if (call !== undefined) this.flight?.release(key, call);
    }
    if (!isEnvelope(value)) {
      this.counters.hits++;
      return value as T;
    }
    if (value.o === this.origin && value.s > start) {
      if (ran) this.counters.misses++;
      else this.counters.coalesced++;
    } else {
      this.counters.hits++;
    }
    return value.__ncBody as T;
  }

  /**
   * Runs `fn` while holding this instance's lock on `key` (ConCache's `isolated`): callers for one key run one at a
   * time, in arrival order. Rejects with `IsolatedTimeoutError` when the lock is not free within `timeout` ms.
   */
  async isolated<T>(key: string, fn: () => T | Promise<T>, opts: IsolatedOptions = {}): Promise<T> {
    const timeout = opts.timeout ?? DEFAULT_ISOLATED_TIMEOUT;
    checkTimeoutMs('CacheService.isolated()', timeout);
    await this.acquire(key, timeout);
    try {
      return await fn();
    } finally {
      this.release(key);
    }
  }

  /**
   * Evicts every entry tagged with one of `tags`, here and on the other instances. When the shared tag index cannot
   * be read (L2 down), the entries this instance knows of are still evicted; the failure is counted and logged.
   */
  async evictTags(tags: string[]): Promise<void> {
    this.markEvicted([], tags);
    const keys = new Set<string>();
    for (const tag of tags) for (const key of this.localTags.take(tag)) keys.add(key);
    const shared = this.sharedTags;
    if (shared !== undefined) {
      const taken = await Promise.all(
        tags.map((tag) =>
          shared.takeTag(tag).catch((error: unknown) => {
            this.tagFailed(tag, error);
            return [] as string[];
          }),
        ),
      );
      for (const members of taken) for (const key of members) keys.add(key);
    }
    await this.evictKeys([...keys]);
  }

  /**
   * Counters since boot: hits, misses, stale, coalesced, errors, refreshErrors, clusterFollowers, clusterFallbacks
   * (routes, `getOrStore` and `@Cached` provider methods alike), and `methods`: each cached provider method's share.
   */
  stats(): CacheServiceStats {
    const methods: Record<string, MethodCacheStats> = {};
    for (const [name, stats] of this.methodCounters) methods[name] = { ...stats };
    return { ...this.counters, methods };
  }

  /** @internal The counters of a `@Cached` provider method (one object per `Class.method`, shared by its instances). */
  methodStats(name: string): MethodCacheStats {
    let stats = this.methodCounters.get(name);
    if (stats === undefined) {
      stats = { hits: 0, misses: 0, stale: 0, coalesced: 0, clusterFollowers: 0 };
      this.methodCounters.set(name, stats);
    }
    return stats;
  }

  /**
   * @internal A cached method starts computing `key`: `evicted` turns true if the key, or one of `tags`, is evicted
   * (here or by another instance) before `endCompute`.
   */
  beginCompute(key: string, tags: string[] | undefined): { evicted: boolean } {
    const record = { tags, evicted: false };
    this.computing.set(key, record);
    return record;
  }

  /** @internal The computation `beginCompute` returned ended. */
  endCompute(key: string, record: { evicted: boolean }): void {
    if (this.computing.get(key) === record) this.computing.delete(key);
  }

  private markEvicted(keys: Iterable<string>, tags?: string[]): void {
    if (this.computing.size === 0) return;
    for (const key of keys) {
      const record = this.computing.get(key);
      if (record !== undefined) record.evicted = true;
    }
    if (tags === undefined) return;
    for (const record of this.computing.values()) {
      if (record.tags?.some((tag) => tags.includes(tag))) record.evicted = true;
    }
  }

  /** @internal Evicts keys from every store and publishes them to the other instances. */
  async evictKeys(keys: string[]): Promise<void> {
    this.markEvicted(keys);
    if (keys.length === 0) return;
    await this.cache.mdel(keys);
    await this.redis?.publish(keys);
  }

  /** @internal A fresh (not stale) L1 entry of a route, or undefined. Synchronous: the hit path. */
  peekFresh(key: string, swr: number): CacheEnvelope | undefined {
    const item = this.memory.get<{ value: CacheEnvelope; expires?: number }>(key);
    if (item === undefined) return undefined;
    if (swr > 0 && (item.expires === undefined || item.expires - Date.now() < swr)) return undefined;
    return isEnvelope(item.value) ? item.value : undefined;
  }

  /**
   * @internal A new envelope for a freshly computed body that lives `lifetime` ms (ttl + stale-while-revalidate).
   * `exact`: every reader must get the body back as it is (a resolver's result), as for `getOrStore`.
   */
  envelope(body: unknown, lifetime: number, meta?: ResponseMeta, exact = false): CacheEnvelope {
    const envelope: CacheEnvelope = { __ncBody: body, s: ++this.seq, o: this.origin, e: Date.now() + lifetime };
    if (meta !== undefined) envelope.r = meta;
    if (exact) this.exact.add(envelope);
    return envelope;
  }

  /** @internal Records `key` under each tag in this instance's index (synchronous). */
  tagLocal(key: string, tags: string[], until: number): void {
    for (const tag of tags) this.localTags.add(tag, key, until);
  }

  /** @internal Records `key` under each tag in the shared index, if any. Never rejects: failures are counted. */
  tagShared(key: string, tags: string[], until: number): Promise<void> | undefined {
    const shared = this.sharedTags;
    if (shared === undefined) return undefined;
    return Promise.all(
      tags.map((tag) => shared.addTag(tag, key, until).catch((error: unknown) => this.tagFailed(tag, error))),
    ).then(() => undefined);
  }

  /**
   * @internal The `refreshThreshold` of `wrap()` for a stale-while-revalidate read of `key`, called by cache-manager
   * with the entry it found, when it decides whether to refresh: this decides for it (Infinity: refresh now, 0: no
   * refresh, the stale value is served). No refresh while one runs for the key, nor while the key waits after a failed
   * one; the decision to refresh marks the key at once, so a request that follows cannot start a second refresh
   * before the first one's failure is recorded.
   */
  refreshThreshold(key: string, swr: number, onRefresh?: (until: number) => void): (value: unknown) => number {
    return (value) => {
      if (!isEnvelope(value) || typeof value.e !== 'number') return swr; // stored by other code: cache-manager decides
      const now = Date.now();
      if (value.e - now >= swr || this.refreshing.has(key)) return 0;
      const backoff = this.refreshBackoff.get(key);
      if (backoff !== undefined && backoff.until > now) return 0;
      if (this.remoteRefresh.size !== 0) {
        const until = this.remoteRefresh.get(key);
        if (until !== undefined && until > now) return 0;
        this.remoteRefresh.delete(key);
      }
      this.refreshing.add(key);
      onRefresh?.(value.e);
      return Infinity;
    };
  }

  /**
   * @internal A background refresh's computation, bounded by the stale entry's expiry (`until`, epoch ms): past it
   * the refresh is of no use, and one that never settled kept the key marked as refreshing (cache-manager's `refresh`
   * event never came), so it was never refreshed again. It rejects then, and the failure's backoff applies.
   */
  boundRefresh<T>(key: string, work: Promise<T>, until: number): Promise<T> {
    const ms = Math.max(1, Math.ceil(until - Date.now()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(REFRESH_TIMED_OUT(describeValue(key), ms))), ms);
      timer.unref?.(); // a hung refresh does not keep the process alive
    });
    return Promise.race([work, timedOut]).finally(() => clearTimeout(timer));
  }

  /** @internal Whether a computation goes through the cluster single flight (`singleFlight: 'cluster'`). */
  get clustered(): boolean {
    return this.flight !== undefined;
  }

  /**
   * @internal `compute` once per key across the instances (`singleFlight: 'cluster'`), inside `wrap()`'s function:
   * under the key's lease, or the value another instance computed (thrown as `LeaderValue`: serve it with
   * `followed()`). The caller releases a miss's lease with `releaseLease()` once `wrap()` settled (the value stored);
   * a background refresh's is released when the refresh ends.
   */
  computeOnce(key: string, compute: () => Promise<CacheEnvelope>, call: FlightCall): Promise<CacheEnvelope> {
    const flight = this.flight as ClusterFlight;
    if (call.refresh) this.refreshCalls.set(key, call);
    return flight.run(key, compute, call);
  }

  /** @internal Releases the lease a miss's call holds, if any (after `wrap()` stored its value, or failed). */
  releaseLease(key: string, call: FlightCall): void {
    this.flight?.release(key, call);
  }

  /**
   * @internal A request served with the value another instance computed while it waited: counted, and the value kept
   * in this instance's L1 (once for all the requests that joined) for the rest of its lifetime.
   */
  followed(key: string, leader: LeaderValue): CacheEnvelope {
    this.counters.clusterFollowers++;
    this.adopt(key, leader);
    return leader.envelope;
  }

  private adopt(key: string, leader: LeaderValue): void {
    if (leader.adopted) return;
    leader.adopted = true;
    const { envelope } = leader;
    const left = Math.ceil(envelope.e - Date.now());
    if (left > 0) this.l1.set(key, envelope, left).catch(() => undefined);
  }

  /**
   * A lease was released on some instance: wake this instance's waiters; when another instance stored a value, this
   * instance's L1 copy of the key (a stale one whose refresh ran there) is dropped, so the next read gets the new one.
   */
  private flightReleased(message: FlightMessage): void {
    this.flight?.released(message);
    if (message.o === this.origin) return;
    if (this.remoteRefresh.size !== 0) this.remoteRefresh.delete(message.k);
    if (message.s === undefined) return;
    const item = this.memory.get<{ value: unknown }>(message.k);
    const value = item?.value;
    if (value !== undefined && !(isEnvelope(value) && value.o === message.o && value.s === message.s)) {
      this.memory.delete(message.k);
    }
  }

  /** @internal The testing kit (`ConcurrencyTester.idle()`): the keys whose background refresh runs now. */
  refreshingKeys(): string[] {
    return [...this.refreshing];
  }

  /** @internal `key` was computed afresh: a later refresh of it starts without waiting. */
  computed(key: string): void {
    if (this.refreshBackoff.size !== 0) this.refreshBackoff.delete(key);
  }

  /** The end of a background refresh (cache-manager's `refresh` event): a failure makes the key wait. */
  private refreshed(key: string, error: unknown): void {
    this.refreshing.delete(key);
    if (this.refreshCalls.size !== 0) {
      const call = this.refreshCalls.get(key);
      if (call !== undefined) {
        this.refreshCalls.delete(key);
        this.flight?.release(key, call);
      }
    }
    if (error !== undefined && this.flight !== undefined) {
      if (isA(error, RefreshedElsewhere)) {
        // Another instance refreshes the key: the stale value is served until its release message drops it from L1.
        const now = Date.now();
        if (this.remoteRefresh.size >= 1024) {
          for (const [k, until] of this.remoteRefresh) if (until <= now) this.remoteRefresh.delete(k);
        }
        this.remoteRefresh.set(key, now + this.flight.wait);
        return;
      }
      if (isA(error, LeaderValue)) {
        // Another instance had refreshed it already: its value, from Redis, replaces the stale one here.
        this.adopt(key, error);
        this.computed(key);
        return;
      }
    }
    if (error === undefined) {
      this.computed(key);
      return;
    }
    const now = Date.now();
    const previous = this.refreshBackoff.get(key);
    const delay = previous === undefined ? REFRESH_BACKOFF_MIN : Math.min(previous.delay * 2, REFRESH_BACKOFF_MAX);
    if (previous === undefined && this.refreshBackoff.size >= this.pruneBackoffAt) this.pruneBackoff(now);
    this.refreshBackoff.set(key, { until: now + delay, delay });
    this.counters.refreshErrors++;
    // A result that is not stored (a stream, an error status, undefined): released, not logged.
    if (isNotCacheable(error)) return error.discard();
    this.counters.errors++;
    if (now - this.lastRefreshLog < STORE_RETRY_AFTER) return;
    this.lastRefreshLog = now;
    this.logger.warn(REFRESH_FAILED(key, delay), errorStack(error) ?? errorMessage(error));
  }

  /** Forgets keys whose last failure is older than the longest wait (the map stays proportional to failing keys). */
  private pruneBackoff(now: number): void {
    for (const [key, backoff] of this.refreshBackoff) {
      if (backoff.until + REFRESH_BACKOFF_MAX < now) this.refreshBackoff.delete(key);
    }
    this.pruneBackoffAt = Math.max(1024, this.refreshBackoff.size * 2);
  }

  private tagFailed(tag: string, error: unknown): void {
    if (this.redis === undefined) this.counters.errors++; // RedisLink counts its own failures
    const now = Date.now();
    if (now - this.lastTagLog < STORE_RETRY_AFTER) return;
    this.lastTagLog = now;
    this.logger.warn(TAG_INDEX_FAILED(tag), errorMessage(error));
  }

  private dropLocal(keys: string[]): void {
    this.markEvicted(keys);
    for (const key of keys) this.memory.delete(key);
  }

  /**
   * The caller's value in what is written to a store, when every caller must get it back as it is (`getOrStore`, `set`
   * and other code's writes); undefined for a route's response body, which is sent as JSON anyway.
   */
  private exactValue(value: unknown): { value: unknown } | undefined {
    if (!isEnvelope(value)) return { value };
    return this.exact.has(value) ? { value: value.__ncBody } : undefined;
  }

  private valueRefused(store: GuardedStore, key: string, reason: string): void {
    this.counters.errors++;
    const now = Date.now();
    if (now - this.lastRefusalLog < STORE_RETRY_AFTER) return;
    this.lastRefusalLog = now;
    this.logger.warn(VALUE_NOT_STORED(describeValue(key), store.index, reason));
  }

  private storeFailed(store: GuardedStore, error: unknown, first: boolean): void {
    this.counters.errors++;
    if (first) {
      this.logger.warn(STORE_FAILED(store.index, errorMessage(error), STORE_RETRY_AFTER));
    }
  }

  private acquire(key: string, timeout: number): Promise<void> {
    const lock = this.locks.get(key);
    if (lock === undefined) {
      this.locks.set(key, { waiters: [] });
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const waiter = { grant: resolve, timer: undefined as NodeJS.Timeout | undefined };
      if (timeout !== Infinity) {
        waiter.timer = setTimeout(() => {
          const i = lock.waiters.indexOf(waiter);
          if (i >= 0) lock.waiters.splice(i, 1);
          reject(new IsolatedTimeoutError(key, timeout));
        }, timeout);
      }
      lock.waiters.push(waiter);
    });
  }

  private release(key: string): void {
    const lock = this.locks.get(key);
    if (lock === undefined) return;
    const next = lock.waiters.shift();
    if (next === undefined) {
      this.locks.delete(key);
      return;
    }
    clearTimeout(next.timer);
    next.grant();
  }
}
