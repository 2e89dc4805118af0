import type { ExecutionContext } from '@nestjs/common';

/** What a response's cache key varies on, beyond the route path and sorted query string. */
export type CacheVary = 'query' | 'user' | `header:${string}`;

/** Options of `@Cached()`: TTLs in milliseconds. */
export interface CachedOptions {
  /** Time to live in ms. Default: `forRoot({ cache: { ttl } })`, else 5000. Never "forever". */
  ttl?: number;
  /** Replaces the default key (path + sorted query string). */
  key?: string | ((context: ExecutionContext) => string);
  /** Parts added to the key. `'user'` or `'header:authorization'`/`'header:cookie'` let credentialed requests be cached. */
  vary?: CacheVary[];
  /**
   * ms after `ttl` during which the stale value is served at once while one background refresh runs. Default 0. After
   * a failed refresh the stale value is still served, and the key is refreshed again after 1 s, then 2 s, 4 s, ... up
   * to 30 s while refreshes keep failing.
   */
  staleWhileRevalidate?: number;
  /** Tags grouping entries for `@CacheEvict({ tags })` / `CacheService.evictTags()`; a function sees the request. */
  tags?: Array<string | ((context: ExecutionContext) => string)>;
}

/** Options of `@CacheEvict()`: what to evict once the handler succeeded. */
export interface CacheEvictOptions {
  /** Keys evicted after the handler succeeded (e.g. `'/items'`, or a function of the request). */
  keys?: Array<string | ((context: ExecutionContext) => string)>;
  /** Tags whose entries are evicted after the handler succeeded. */
  tags?: Array<string | ((context: ExecutionContext) => string)>;
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

/** Options of `CacheService.isolated()`. */
export interface IsolatedOptions {
  /** How long to wait for the key's lock, in ms. Default 5000. */
  timeout?: number;
}
