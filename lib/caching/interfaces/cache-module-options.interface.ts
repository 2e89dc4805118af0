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
}
