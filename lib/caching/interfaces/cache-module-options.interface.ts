import type { Keyv, KeyvStoreAdapter } from 'keyv';

/** Module-wide cache settings (`forRoot({ cache: { ... } })`). All durations are milliseconds. */
export interface CacheModuleOptions {
  /** Default time to live in ms. Default 5000; never "forever". */
  ttl?: number;
  /** Bound of the in-memory L1 (LRU). Default 10,000 entries. */
  maxEntries?: number;
  /**
   * Stores behind the L1 (L2), e.g. `new Keyv({ store: new KeyvRedis(url) })`. A bare store adapter
   * (`new KeyvRedis(url)`) is wrapped in `new Keyv({ store })`, as `CacheModule` does.
   */
  stores?: Keyv | KeyvStoreAdapter | Array<Keyv | KeyvStoreAdapter>;
  /** Timeout of every store call in ms; a slow or failing store means a miss, never a failed request. Default 500. */
  storeTimeout?: number;
  /**
   * Who shares one computation of a missing (or stale) key. `'instance'`: the requests of this instance (one
   * computation per key per instance). `'cluster'`: every instance sharing the Redis L2 (one computation per key for
   * all of them: the first takes a lease on the key in Redis, the others wait for its value). Default `'cluster'` when
   * one of `stores` is a `@keyv/redis` store, else `'instance'`; `'cluster'` without one fails boot.
   */
  singleFlight?: 'instance' | 'cluster';
  /**
   * With `singleFlight: 'cluster'`, how long a request waits for another instance's computation of its key before
   * computing it itself, in ms. Also the lifetime of a key's lease if its holder dies. Default 5000.
   */
  singleFlightWait?: number;
  /**
   * The largest value written to an L2 store, in bytes once serialized (default 1 MiB). A larger value is not written:
   * it is served from the instance's memory (L1), other instances compute their own, and a warning says so.
   */
  maxValueSize?: number;
}
