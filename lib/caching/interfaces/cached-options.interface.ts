import type { ExecutionContext } from '@nestjs/common';

/** What a response's cache key varies on, beyond the route path and sorted query string. */
export type CacheVary = 'query' | 'user' | `header:${string}`;

/**
 * Options of `@Cached()`: TTLs in milliseconds. `A` is what a `key` or `tags` function receives: the
 * `ExecutionContext` on a route; the method's arguments on a provider method (inferred from an annotated function,
 * e.g. `key: (id: string) => \`user:${id}\``).
 */
export interface CachedOptions<A extends unknown[] = [context: ExecutionContext]> {
  /** Time to live in ms. Default: `forRoot({ cache: { ttl } })`, else 5000. Never "forever". */
  ttl?: number;
  /**
   * Replaces the default key: on a route the path + sorted query string, on a provider method
   * `Class.method:` + a hash of the arguments.
   */
  key?: string | ((...args: A) => string);
  /** Parts added to the key. `'user'` or `'header:authorization'`/`'header:cookie'` let credentialed requests be cached. */
  vary?: CacheVary[];
  /**
   * ms after `ttl` during which the stale value is served at once while one background refresh runs. Default 0. After
   * a failed refresh the stale value is still served, and the key is refreshed again after 1 s, then 2 s, 4 s, ... up
   * to 30 s while refreshes keep failing.
   */
  staleWhileRevalidate?: number;
  /**
   * Tags grouping entries for `@CacheEvict({ tags })` / `CacheService.evictTags()`; a function sees the request (a
   * route) or the arguments (a provider method).
   */
  tags?: Array<string | ((...args: A) => string)>;
}

/**
 * Options of `@CacheEvict()`: what to evict once the handler (or provider method) succeeded. `A` as in `CachedOptions`:
 * functions see the request on a route, the arguments on a provider method.
 */
export interface CacheEvictOptions<A extends unknown[] = [context: ExecutionContext]> {
  /** Keys evicted after the handler succeeded (e.g. `'/items'`, or a function of the request or arguments). */
  keys?: Array<string | ((...args: A) => string)>;
  /** Tags whose entries are evicted after the handler succeeded. */
  tags?: Array<string | ((...args: A) => string)>;
}

/** Counters of `CacheService.stats()`, since boot. */
export interface CacheStats {
  /** Served from the cache while fresh. */
  hits: number;
  /** Computed (handler / `getOrStore` function ran) because nothing was cached. */
  misses: number;
  /** Served stale while a background refresh ran. */
  stale: number;
  /** Misses that joined a computation already running for their key instead of running their own. */
  coalesced: number;
  /** Store failures (throws, timeouts, `'error'` events) and failed background refreshes. */
  errors: number;
  /**
   * Background refreshes (stale-while-revalidate) that failed: the handler threw, or its response was not cacheable.
   * After each, the key waits 1 s, doubling up to 30 s, before it is refreshed again.
   */
  refreshErrors: number;
  /**
   * With `singleFlight: 'cluster'`: requests answered with the value another instance computed while they waited
   * (not counted in `misses` nor `coalesced`), every request that joined this instance's wait included.
   */
  clusterFollowers: number;
  /**
   * With `singleFlight: 'cluster'`: computations this instance ran itself because the coordination failed (Redis down,
   * slow or failing a moment ago) or no value came within `singleFlightWait` (the leader died, hung or failed). Their
   * requests count as `misses` too.
   */
  clusterFallbacks: number;
}

/**
 * What `CacheService.stats()` returns: the counters, and the share of each `@Cached` provider method, message handler
 * and GraphQL resolver.
 */
export interface CacheServiceStats extends CacheStats {
  /**
   * The `@Cached` provider methods, `@MessagePattern` handlers and `@Query` resolvers, by `Class.method` (counted in
   * the totals above too, like routes).
   */
  methods: Record<string, MethodCacheStats>;
}

/** One `@Cached` provider method's (or message handler's, or resolver's) counters in `CacheService.stats().methods`, since boot. */
export interface MethodCacheStats {
  hits: number;
  misses: number;
  stale: number;
  coalesced: number;
  clusterFollowers: number;
}

/** Options of `CacheService.isolated()`. */
export interface IsolatedOptions {
  /** How long to wait for the key's lock, in ms. Default 5000. */
  timeout?: number;
}
