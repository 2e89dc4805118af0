/** Metadata key of `@Cached` (on a method or a class). */
export const CACHED_METADATA = 'nestjs-concurrency:cached';
/** Metadata key of `@CacheEvict`. */
export const CACHE_EVICT_METADATA = 'nestjs-concurrency:cache-evict';
/** Response header telling how a request was served. */
export const X_CACHE_HEADER = 'X-Cache';
/** Prefix of the keys that hold a tag's member keys. */
export const TAG_KEY_PREFIX = 'nestjs-concurrency:tag:';
/** Redis pub/sub channel (after the store's namespace) on which evictions are published to the other instances of the app. */
export const EVICT_CHANNEL = 'nestjs-concurrency:cache:evict';
/** After a store failed, it is skipped (a miss, a no-op write) for this long before it is tried again. */
export const STORE_RETRY_AFTER = 1000;
/**
 * After a background refresh of a key failed, that key is not refreshed again for this long (its stale value is
 * served meanwhile); each further failure doubles the wait, up to `REFRESH_BACKOFF_MAX`.
 */
export const REFRESH_BACKOFF_MIN = 1000;
/** The longest wait between two background refreshes of a key whose refreshes keep failing. */
export const REFRESH_BACKOFF_MAX = 30_000;
/** How often expired entries of the in-memory L1 are freed. */
export const L1_CHECK_INTERVAL = 1000;
/** Default timeout of `CacheService.isolated` waiting for its key's lock. */
export const DEFAULT_ISOLATED_TIMEOUT = 5000;
/** How long past its entry's expiry a shared tag membership is kept (first written before the handler's result). */
export const TAG_GRACE = 30_000;
/** Redis pub/sub channel (after the store's namespace) telling that a key's lease was released, and if it was stored. */
export const FLIGHT_CHANNEL = 'nestjs-concurrency:cache:flight';
/** Prefix (after the store's namespace) of the Redis keys that hold a key's lease in the cluster single flight. */
export const LEASE_KEY_PREFIX = 'nestjs-concurrency:lease:';
/** Default `cache.singleFlightWait`: how long a request waits for another instance's computation of its key. */
export const DEFAULT_SINGLE_FLIGHT_WAIT = 5000;
/**
 * Default `cache.maxValueSize`: the largest value (serialized, in bytes) written to an L2 store. Larger ones stay in the
 * instance's memory only: a value over a server's limit (Redis proto-max-bulk-len) drops its connection, and large
 * values block Redis for everyone.
 */
export const DEFAULT_MAX_VALUE_SIZE = 1024 * 1024;
/**
 * While its pub/sub subscriber is not listening, a request waiting for another instance's computation polls the value
 * and the lease instead: first after this many ms, doubling up to `FLIGHT_POLL_MAX`.
 */
export const FLIGHT_POLL_MIN = 25;
export const FLIGHT_POLL_MAX = 200;
