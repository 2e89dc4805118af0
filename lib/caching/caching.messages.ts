import { safeString } from '../utils/describe.js';

export const STORE_FAILED = (index: number, reason: string, retryAfter: number) =>
  `Cache store #${index} failed (${reason}); requests go to the handler and the store is retried in ${retryAfter} ms. Further failures of this burst are counted in stats().errors, not logged.`;
export const STORE_TIMEOUT = (index: number, method: string, ms: number) =>
  `store #${index} ${method}() did not answer within storeTimeout ${ms} ms`;
export const STORE_RECOVERED = (index: number) => `Cache store #${index} answers again.`;
export const REFRESH_FAILED = (key: string, retryIn: number) =>
  `Background refresh of cache key "${key}" failed; the stale value is served until it expires, and the key is not refreshed again for ${retryIn} ms. Further refresh failures within a second are counted in stats().refreshErrors, not logged.`;
export const REFRESH_TIMED_OUT = (key: string, ms: number) =>
  `Background refresh of cache key ${key} did not settle within ${ms} ms (the entry's remaining lifetime).`;
export const TAG_INDEX_FAILED = (tag: string) => `Could not record cache tag "${tag}".`;
export const EVICT_PUBLISH_FAILED = 'Could not publish a cache eviction to the other instances.';
export const EVICT_SUBSCRIBE_FAILED = 'Could not subscribe to cache evictions of the other instances.';
export const EVICT_FAILED = (route: string) => `Cache eviction after ${route} failed.`;
export const ISOLATED_TIMEOUT = (key: string, ms: number) =>
  `CacheService.isolated("${key}") waited ${ms} ms (timeout) for the key's lock, still held by another caller. Raise the timeout or shorten the work done under the lock.`;
export const REDIS_TIMEOUT = (what: string, ms: number) => `Redis ${what} did not answer within storeTimeout ${ms} ms`;
export const REDIS_CLOSED = (what: string) => `Redis ${what} skipped: the cache is closed (application shutdown)`;
export const REDIS_SKIPPED = (what: string, ms: number) => `Redis ${what} skipped: Redis failed less than ${ms} ms ago`;
export const TTL_INVALID = (where: string, ttl: unknown) =>
  `Invalid ${where} ttl ${safeString(ttl)}: expected a finite number of ms > 0 (a cache entry never lives forever).`;
export const ROUTE_TTL_INVALID = (route: string, ttl: unknown, fallback: number) =>
  `Cache TTL ${safeString(ttl)} of ${route} (@CacheTTL) is not a finite number of ms > 0; using the module ttl ${fallback} ms instead (a cache entry never lives forever).`;
export const STORE_DEFAULT_NAMESPACE = (index: number, namespace: string | undefined) =>
  `Cache store #${index} has ${namespace ? `Keyv's default namespace "${namespace}"` : 'no namespace'}: every app using the same server with it shares its keys, and one app serves another's cached values. Give each app a namespace of its own, e.g. new Keyv({ store: new KeyvRedis(url), namespace: 'my-app' }).`;
export const UNSTORABLE_TYPE = (where: string) =>
  `${where}, which the store's JSON serializer would give back as something else. Return plain JSON data (objects, arrays, strings, finite numbers, booleans, null), or give the store a serializer that keeps it (new Keyv({ store, serialize, deserialize }))`;
export const UNSTORABLE_SERIALIZE = (reason: string) => `the store's serializer fails on the value (${reason})`;
export const UNSTORABLE_SIZE = (bytes: number, max: number) =>
  `the value is ${bytes} bytes once serialized, over cache.maxValueSize ${max}. Raise cache.maxValueSize (and the server's own limit, e.g. Redis proto-max-bulk-len) or cache smaller values`;
export const VALUE_NOT_STORED = (key: string, index: number, reason: string) =>
  `Cache key ${key} is not written to store #${index}: ${reason}. This instance serves the value from memory; other instances compute their own. Further refused writes within a second are counted in stats().errors, not logged.`;
export const ARGUMENT_UNKEYABLE = (path: string, reason: string) => `${path} ${reason}`;
export const METHOD_KEY_FAILED = (method: string, reason: string) =>
  `@Cached ${method}: cannot build a cache key from the arguments: ${reason}. Give @Cached a key function of the arguments (key: (...args) => string) that names what the result depends on.`;
export const METHOD_KEY_INVALID = (method: string, got: string) =>
  `@Cached ${method}: the key function returned ${got}; expected a non-empty string.`;
export const METHOD_NOT_ASYNC = (decorator: string, method: string) =>
  `${decorator} ${method}: the method is neither async nor declared to return a Promise. A cached method's callers get a Promise: make it async (or declare its return type Promise<...>).`;
export const METHOD_NOT_PROMISE = (method: string, got: string) =>
  `@Cached ${method}: the method returned ${got}, not a Promise; nothing was cached. Make it async.`;
export const METHOD_BOTH = (method: string) =>
  `${method} has both @Cached and @CacheEvict: a method either reads through the cache or evicts from it. Split it in two methods.`;
export const METHOD_REQUEST_SCOPED = (decorator: string, method: string) =>
  `${decorator} ${method}: the provider is request- or transient-scoped (no single instance to wrap at boot). Cache a method of a singleton provider, or use CacheService.getOrStore() inside the method.`;
export const METHOD_OPTION_ROUTE_ONLY = (method: string, option: string) =>
  `@Cached ${method}: option "${option}" applies to HTTP routes only (a provider method has no request). Key on the arguments instead (key: (...args) => string).`;
export const METHOD_CLASS_DECORATOR = (name: string) =>
  `@Cached on the class ${name}, a provider: put @Cached on each method to cache (a class-wide @Cached applies to the routes of a controller).`;
export const METHOD_NAME_CLASH = (name: string) =>
  `@Cached: two different classes are named ${name}, and their methods would share cache keys ("${name}.method:..."). Rename one class or give its @Cached methods a key function.`;
export const METHOD_TAG_INVALID = (method: string, got: string) =>
  `@Cached ${method}: a tags function returned ${got}; expected a non-empty string.`;
export const METHOD_EVICT_FAILED = (method: string) =>
  `Cache eviction after ${method} failed; the method's result is returned all the same.`;
export const VALUE_NOT_CARRIED = (reason: string) =>
  `the value cannot be carried to another instance with its types (${reason}). Return plain data, Date, Map, Set, bigint, Buffer, typed arrays, RegExp, URL or Error values`;
export const CACHED_EVENT_HANDLER = (handler: string) =>
  `@Cached on ${handler}, an @EventPattern handler: an event has no reply to cache. Remove @Cached (an event handler may use @CacheEvict), or make it a @MessagePattern.`;
export const CACHED_GRPC_STREAM = (handler: string) =>
  `@Cached on ${handler}, a streaming gRPC method: its request is a stream, not a value a cache key can be made of. Remove @Cached, or cache the service method it calls.`;
export const CACHED_MUTATION = (handler: string) =>
  `@Cached on ${handler}, a GraphQL @Mutation: a mutation changes data and must run every time. Cache the @Query resolvers instead and evict them here with @CacheEvict({ tags }).`;
export const CACHED_SUBSCRIPTION = (handler: string) =>
  `@Cached on ${handler}, a GraphQL @Subscription: a subscription is a stream of events, not one value to cache. Remove @Cached.`;
export const CACHED_FIELD = (handler: string) =>
  `@Cached on ${handler}, a GraphQL @ResolveField: field resolvers run without interceptors by default, so nothing would be cached. Cache the @Query that returns the parent, or the service method the field calls.`;
export const CACHED_RPC_VARY = (handler: string, vary: string) =>
  `@Cached on ${handler}, a @MessagePattern handler, has vary '${vary}': a message has no HTTP request, user or headers to vary on, and one entry would be shared by every caller. The key is the pattern and the data: put what the reply depends on in the data, or use key: (ctx) => string.`;
export const CALL_NOT_KEYED = (handler: string, reason: string) =>
  `${handler} is not cached for this call: ${reason}, which a cache key cannot be made of. The handler runs uncached. Further calls of ${handler} that cannot be keyed are not logged for a minute.`;
export const GRAPHQL_NO_REQUEST = (handler: string) =>
  `${handler} varies on the user or a header, but the GraphQL context has no req: it is not cached. Give GraphQLModule a context with the request, e.g. context: ({ req }) => ({ req }). Not logged again for a minute.`;
