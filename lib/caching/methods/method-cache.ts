import { Logger } from '@nestjs/common';
import {
  type CacheEnvelope,
  isEnvelope,
  isNotCacheable,
  markTyped,
  NotCacheable,
  remainingTtl,
} from '../cache-envelope.js';
import type { CacheService } from '../cache.service.js';
import { TAG_GRACE } from '../caching.constants.js';
import {
  METHOD_EVICT_FAILED,
  METHOD_KEY_FAILED,
  METHOD_KEY_INVALID,
  METHOD_NOT_PROMISE,
  METHOD_TAG_INVALID,
} from '../caching.messages.js';
import { type FlightCall, isA, LeaderValue } from '../cluster-flight.js';
import type { MethodCacheStats } from '../interfaces/cached-options.interface.js';
import { describeValue, errorMessage, errorStack } from '../../utils/describe.js';
import { hashArguments, UnkeyableArgument } from './method-key.js';

/** A key or tag: a constant, or a function of the method's arguments. */
export type ArgsPart = string | ((...args: unknown[]) => string);

type AnyMethod = (...args: unknown[]) => unknown;

/** A miss takes any value another instance stored. */
const acceptAny = (): boolean => true;

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  (typeof value === 'object' || typeof value === 'function') &&
  value !== null &&
  typeof (value as { then?: unknown }).then === 'function';

/** What the explorer resolved for one `@Cached` provider method. Internal. */
export interface MethodCacheDefinition {
  /** `Class.method`, the default key's prefix and the name in messages and stats. */
  name: string;
  key: ArgsPart | undefined;
  ttl: number;
  swr: number;
  tags: ArgsPart[];
}

/**
 * One `@Cached` provider method: its key from the arguments, then the cache path of a route (one computation per key
 * under concurrency, here and with `singleFlight: 'cluster'` across the instances; ttl, stale-while-revalidate,
 * tags; L1 then L2, failing open). A hit is served from the L1 synchronously. A throw is not cached and reaches every
 * caller that waited for it. Internal.
 */
export class MethodCache {
  private readonly prefix: string;

  constructor(
    private readonly service: CacheService,
    private readonly def: MethodCacheDefinition,
    private readonly original: AnyMethod,
    readonly stats: MethodCacheStats,
  ) {
    this.prefix = `${def.name}:`;
  }

  /** The method's replacement on its instance. */
  wrapper(): AnyMethod {
    const call = (self: unknown, args: unknown[]) => this.call(self, args);
    const wrapped = function (this: unknown, ...args: unknown[]): Promise<unknown> {
      return call(this, args);
    };
    Object.defineProperty(wrapped, 'name', { value: this.original.name });
    return wrapped;
  }

  call(self: unknown, args: unknown[]): Promise<unknown> {
    let key: string;
    try {
      key = this.keyOf(args);
    } catch (error) {
      return Promise.reject(error);
    }
    const hit = this.service.peekFresh(key, this.def.swr);
    if (hit !== undefined) {
      this.service.counters.hits++;
      this.stats.hits++;
      return Promise.resolve(hit.__ncBody);
    }
    return this.through(self, args, key);
  }

  keyOf(args: unknown[]): string {
    const key = this.def.key;
    if (key === undefined) {
      try {
        return this.prefix + hashArguments(args);
      } catch (error) {
        if (error instanceof UnkeyableArgument) throw new TypeError(METHOD_KEY_FAILED(this.def.name, error.message));
        throw error;
      }
    }
    if (typeof key === 'string') return key;
    const value: unknown = key(...args);
    if (typeof value !== 'string' || value === '')
      throw new TypeError(METHOD_KEY_INVALID(this.def.name, describeValue(value)));
    return value;
  }

  private tagsOf(args: unknown[]): string[] | undefined {
    if (this.def.tags.length === 0) return undefined;
    return this.def.tags.map((tag) => {
      if (typeof tag === 'string') return tag;
      const value: unknown = tag(...args);
      if (typeof value !== 'string' || value === '') {
        throw new TypeError(METHOD_TAG_INVALID(this.def.name, describeValue(value)));
      }
      return value;
    });
  }

  private async invoke(self: unknown, args: unknown[]): Promise<unknown> {
    const result = this.original.apply(self, args);
    if (!isThenable(result)) throw new TypeError(METHOD_NOT_PROMISE(this.def.name, describeValue(result)));
    return result;
  }

  private async through(self: unknown, args: unknown[], key: string): Promise<unknown> {
    const service = this.service;
    const { ttl, swr } = this.def;
    const lifetime = ttl + swr;
    const start = service.seq;
    let ran = false;
    let refresh = false;
    let refreshUntil = 0;
    let call: FlightCall | undefined;
    let retagged: Promise<void> | undefined;
    const tags = this.tagsOf(args);
    const compute = async (): Promise<CacheEnvelope> => {
      // The shared tag write runs while the method does (a member recorded before its entry is harmless).
      const tagged = tags && service.tagShared(key, tags, Date.now() + lifetime + TAG_GRACE);
      const computing = service.beginCompute(key, tags);
      let value: unknown;
      try {
        value = await this.invoke(self, args);
      } finally {
        service.endCompute(key, computing);
      }
      if (tagged !== undefined) await tagged;
      // Evicted while it ran (a write happened meanwhile): its callers get it, the cache does not keep it.
      if (computing.evicted) throw new NotCacheable(value);
      const envelope = markTyped(service.envelope(value, lifetime));
      if (tags !== undefined) {
        service.tagLocal(key, tags, envelope.e);
        // Again now: an eviction of the tag by another instance while the method ran deleted the first membership.
        retagged = service.tagShared(key, tags, envelope.e + TAG_GRACE);
      }
      return envelope;
    };
    let raw: { value: unknown; expires?: number };
    try {
      raw = (await service.cache.wrap<unknown>(
        key,
        async () => {
          ran = true;
          let work: Promise<CacheEnvelope>;
          if (!service.clustered) work = compute();
          else {
            call = { refresh, accepts: refresh ? (found) => found.e - Date.now() >= swr : acceptAny };
            work = service.computeOnce(key, compute, call);
          }
          // A background refresh that never settles must not keep the key from being refreshed again.
          return refresh ? service.boundRefresh(key, work, refreshUntil) : work;
        },
        {
          ttl: remainingTtl(lifetime),
          refreshThreshold:
            swr > 0
              ? service.refreshThreshold(key, swr, (until) => {
                  refresh = true;
                  refreshUntil = until;
                })
              : undefined,
          raw: true,
        },
      )) as unknown as { value: unknown; expires?: number };
    } catch (error) {
      if (isA(error, LeaderValue)) {
        // Computed by another instance while this call waited (it ran nothing here).
        const envelope = service.followed(key, error);
        if (tags !== undefined) service.tagLocal(key, tags, envelope.e);
        this.stats.clusterFollowers++;
        return envelope.__ncBody;
      }
      if (isNotCacheable(error)) {
        if (ran) {
          service.counters.misses++;
          this.stats.misses++;
        } else {
          service.counters.coalesced++;
          this.stats.coalesced++;
        }
        return error.value;
      }
      throw error;
    } finally {
      // A miss's lease, once its value is stored (or its computation failed); a refresh's is released when it ends.
      if (call !== undefined && !refresh) service.releaseLease(key, call);
    }
    const envelope = raw.value;
    if (!isEnvelope(envelope)) {
      // A value stored under this key by other code (CACHE_MANAGER, CacheService.set): served as it is.
      service.counters.hits++;
      this.stats.hits++;
      return envelope;
    }
    if (envelope.o === service.origin && envelope.s > start) {
      if (ran) {
        service.counters.misses++;
        this.stats.misses++;
        service.computed(key);
        if (retagged !== undefined) await retagged;
      } else {
        service.counters.coalesced++;
        this.stats.coalesced++;
      }
      return envelope.__ncBody;
    }
    if (swr > 0 && (raw.expires === undefined || raw.expires - Date.now() < swr)) {
      service.counters.stale++;
      this.stats.stale++;
      return envelope.__ncBody;
    }
    service.counters.hits++;
    this.stats.hits++;
    return envelope.__ncBody;
  }
}

/** One `@CacheEvict` provider method: after it resolved, its keys and tags are evicted. Never after a throw. Internal. */
export class MethodEvict {
  private readonly logger = new Logger('CacheService');

  constructor(
    private readonly service: CacheService,
    private readonly name: string,
    private readonly keys: ArgsPart[],
    private readonly tags: ArgsPart[],
    private readonly original: AnyMethod,
  ) {}

  wrapper(): AnyMethod {
    const call = (self: unknown, args: unknown[]) => this.call(self, args);
    const wrapped = function (this: unknown, ...args: unknown[]): Promise<unknown> {
      return call(this, args);
    };
    Object.defineProperty(wrapped, 'name', { value: this.original.name });
    return wrapped;
  }

  async call(self: unknown, args: unknown[]): Promise<unknown> {
    const result = this.original.apply(self, args);
    if (!isThenable(result)) throw new TypeError(METHOD_NOT_PROMISE(this.name, describeValue(result)));
    const value = await result;
    try {
      const resolve = (part: ArgsPart): string => {
        const text: unknown = typeof part === 'function' ? part(...args) : part;
        if (typeof text !== 'string' || text === '')
          throw new TypeError(METHOD_KEY_INVALID(this.name, describeValue(text)));
        return text;
      };
      const keys = this.keys.map(resolve);
      const tags = this.tags.map(resolve);
      await Promise.all([
        keys.length > 0 ? this.service.evictKeys(keys) : undefined,
        tags.length > 0 ? this.service.evictTags(tags) : undefined,
      ]);
    } catch (error) {
      this.service.counters.errors++;
      this.logger.warn(METHOD_EVICT_FAILED(this.name), errorStack(error) ?? errorMessage(error));
    }
    return value;
  }
}
