import { CACHE_KEY_METADATA, CACHE_TTL_METADATA } from '@nestjs/cache-manager';
import { type CallHandler, type ExecutionContext, Injectable, Logger, type NestInterceptor } from '@nestjs/common';
import { RESPONSE_PASSTHROUGH_METADATA, ROUTE_ARGS_METADATA, SSE_METADATA } from '@nestjs/common/constants.js';
import { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum.js';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { createHash } from 'node:crypto';
import { lastValueFrom, type Observable, of } from 'rxjs';
import { type CacheEnvelope, isEnvelope, isNotCacheable, NotCacheable, remainingTtl } from './cache-envelope.js';
import { sortQuery } from './cache-key.js';
import { forbidsSharedStore, headersOf, responseMeta, setsCookie } from './response-meta.js';
import { isSingleValue, responseOpen, singleValue, statusOf } from './handler-result.js';
import { CacheService, isValidTtl } from './cache.service.js';
import { type FlightCall, isA, LeaderValue } from './cluster-flight.js';
import { CACHE_EVICT_METADATA, CACHED_METADATA, TAG_GRACE, X_CACHE_HEADER } from './caching.constants.js';
import { CALL_NOT_KEYED, EVICT_FAILED, GRAPHQL_NO_REQUEST, ROUTE_TTL_INVALID } from './caching.messages.js';
import {
  callKey,
  graphqlRequest,
  type HandlerCache,
  headerPart as callHeaderPart,
  resolveHandlerCache,
} from './handlers/handler-cache.js';
import { UnkeyableValue } from './handlers/stable-hash.js';
import type { CachedOptions, CacheEvictOptions, MethodCacheStats } from './interfaces/cached-options.interface.js';
import { errorMessage, errorStack } from '../utils/describe.js';

/**
 * Requests (execution contexts) an instance of the interceptor already handles, so a second instance on the same
 * route (APP_INTERCEPTOR plus @Cached) passes through. A WeakSet keeps the context's shape unchanged.
 */
const handled = new WeakSet<object>();

/** A miss takes any value another instance stored for its key. */
const acceptAny = (): boolean => true;

type KeyPart = string | ((context: ExecutionContext) => string);

/** What `throughCache` needs of a route's or a handler's policy. */
/** What a cached call needs of its route's or handler's policy; `stats`: a handler's own counters (routes have none). */
type CachePolicy = Pick<RouteCache, 'ttl' | 'swr' | 'tags' | 'name' | 'ttlWarned'> & { stats?: MethodCacheStats };

/** A call that could not be keyed is logged at most this often per handler. */
const NOT_KEYED_LOG_INTERVAL = 60_000;

/** What the interceptor resolved once per route (handler). */
interface RouteCache {
  key: KeyPart | undefined;
  ttl: number | ((context: ExecutionContext) => number | Promise<number>);
  swr: number;
  varyQuery: boolean;
  varyUser: boolean;
  headers: string[];
  allowAuthorization: boolean;
  allowCookie: boolean;
  tags: KeyPart[];
  evict: CacheEvictOptions | undefined;
  /** An `@Sse` route: passed through untouched (never buffered, no header). */
  streams: boolean;
  /** `@Res()` / `@Next()` without `passthrough`: the handler answers itself; never cached. */
  ownsResponse: boolean;
  /** `Class.method`, for messages. */
  name: string;
  /** An invalid @CacheTTL was already reported. */
  ttlWarned: boolean;
}

interface HttpRequest {
  method: string;
  headers: Record<string, string | string[] | undefined>;
  user?: { id?: unknown; sub?: unknown };
}

const resolve = (part: KeyPart, context: ExecutionContext): string =>
  typeof part === 'function' ? part(context) : part;

/** A vary header's value in a key: hashed, so credentials (and any header value) never appear in stores or messages. */
function headerPart(value: string | string[] | undefined): string {
  if (value === undefined) return '';
  return createHash('sha256')
    .update(Array.isArray(value) ? value.join(',') : value)
    .digest('base64url');
}

/** Whether a handler takes the response itself: `@Res()` or `@Next()` without `{ passthrough: true }`, as Nest decides. */
function ownsResponse(target: object, handler: object): boolean {
  const name = (handler as { name?: string }).name;
  if (name === undefined) return false;
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, target, name) as
    Record<string, { data?: { passthrough?: boolean } }> | undefined;
  if (args === undefined) return false;
  for (const [key, arg] of Object.entries(args)) {
    const type = Number(key.split(':')[0]);
    if (type !== RouteParamtypes.RESPONSE && type !== RouteParamtypes.NEXT) continue;
    if (type === RouteParamtypes.RESPONSE && arg?.data?.passthrough === true) continue;
    if (
      type === RouteParamtypes.RESPONSE &&
      Reflect.getMetadata(RESPONSE_PASSTHROUGH_METADATA, target, name) === true
    ) {
      continue;
    }
    return true;
  }
  return false;
}

/** Whether a handler takes the platform's response at all (`@Res()`, with or without `passthrough`). */
function takesResponse(target: object, handler: object): boolean {
  const name = (handler as { name?: string }).name;
  if (name === undefined) return false;
  const args = Reflect.getMetadata(ROUTE_ARGS_METADATA, target, name) as Record<string, unknown> | undefined;
  return args !== undefined && Object.keys(args).some((key) => Number(key.split(':')[0]) === RouteParamtypes.RESPONSE);
}

/**
 * Caches the results of GET/HEAD handlers with one handler call per key under concurrency (cache-manager `wrap`),
 * stale-while-revalidate, safe keys and eviction. Applied by `@Cached` / `@CacheEvict`, or globally as
 * `APP_INTERCEPTOR` (then every GET is cached, and `@CacheKey`/`@CacheTTL` of `@nestjs/cache-manager` are honoured).
 * Override the protected hooks (`trackBy`, `isRequestCacheable`, `isResponseCacheable`, `mustBypass`) to change
 * what is cached and how. Never buffered: `@Sse` routes and handlers whose result is a stream (an Observable that
 * emits more than once, a `StreamableFile`, a Node or web stream, an async iterable); `@Res()` routes without
 * `passthrough` are not cached.
 */
@Injectable()
export class ResponseCacheInterceptor implements NestInterceptor {
  protected allowedMethods = ['GET', 'HEAD'];
  private readonly routes = new WeakMap<object, RouteCache>();
  /** Microservice and GraphQL handlers' policies. */
  private readonly handlers = new WeakMap<object, HandlerCache>();
  /** The last route resolved: `intercept`, `trackBy` and `mustBypass` of one request look it up once. */
  private lastHandler?: object;
  private lastRoute?: RouteCache;
  private readonly logger = new Logger('ResponseCacheInterceptor');

  constructor(
    protected readonly cacheService: CacheService,
    protected readonly reflector: Reflector,
    protected readonly httpAdapterHost: HttpAdapterHost,
  ) {}

  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> | Promise<Observable<unknown>> {
    const type = context.getType<string>();
    if (type !== 'http') {
      return type === 'rpc' || type === 'graphql' ? this.interceptCall(context, next, type) : next.handle();
    }
    // The same context reaches every interceptor of a request: a second instance of this interceptor passes through.
    if (handled.has(context)) return next.handle();
    handled.add(context);
    const route = this.route(context);
    if (route.streams) return next.handle();
    if (route.evict !== undefined) return this.handleAndEvict(context, next, route.evict);
    if (!this.isRequestCacheable(context)) return next.handle();
    const key = route.ownsResponse || this.mustBypass(context) ? undefined : this.trackBy(context);
    if (key === undefined) {
      this.setCacheHeader(context, 'BYPASS');
      return next.handle();
    }
    const hit = this.cacheService.peekFresh(key, route.swr);
    if (hit !== undefined) {
      this.cacheService.counters.hits++;
      return of(this.serve(context, hit, 'HIT'));
    }
    return this.throughCache(context, next, key, route);
  }

  /**
   * The cache key of a request: the `key` option (or `@CacheKey`), else the URL path with its query parameters
   * sorted; then the `vary` parts. `undefined` skips the cache (`X-Cache: BYPASS`).
   */
  protected trackBy(context: ExecutionContext): string | undefined {
    const route = this.route(context);
    const request = context.getArgByIndex<HttpRequest>(0);
    let key: string;
    if (route.key === undefined) {
      key = sortQuery(this.httpAdapterHost.httpAdapter.getRequestUrl(request) as string);
    } else {
      key = resolve(route.key, context);
      if (route.varyQuery) {
        const url = this.httpAdapterHost.httpAdapter.getRequestUrl(request) as string;
        const sorted = sortQuery(url);
        const q = sorted.indexOf('?');
        if (q >= 0) key += sorted.slice(q);
      }
    }
    if (route.varyUser) key += `|user:${this.userOf(request)}`;
    for (const name of route.headers) key += `|${name}:${headerPart(request.headers[name])}`;
    return key;
  }

  /** Only GET and HEAD (keyed like GET) are cached. */
  protected isRequestCacheable(context: ExecutionContext): boolean {
    return this.allowedMethods.includes(context.getArgByIndex<HttpRequest>(0).method);
  }

  /**
   * Whether a computed response may be stored (and shared with the requests that waited for it): by default a
   * success, 2xx except 206 (a partial body). `statusCode` is the status set so far (`@HttpCode`,
   * `@Res({ passthrough: true })`); `undefined` where the platform does not say. A response refused here is sent
   * with `X-Cache: BYPASS`, and each request that waited for it runs the handler itself. Independently of this hook,
   * a response marked `Cache-Control: no-store` or `private`, or one whose handler sets a cookie, is never stored.
   */
  protected isResponseCacheable(context: ExecutionContext, statusCode: number | undefined, body: unknown): boolean {
    void context;
    void body;
    return statusCode === undefined || (statusCode >= 200 && statusCode < 300 && statusCode !== 206);
  }

  /**
   * The shared-cache rule of RFC 9111: a request carrying `Authorization` or `Cookie` is not served from nor stored in
   * the cache, unless the route varies on `'user'` or on that header.
   */
  protected mustBypass(context: ExecutionContext): boolean {
    const headers = context.getArgByIndex<HttpRequest>(0).headers;
    if (headers.authorization === undefined && headers.cookie === undefined) return false;
    const route = this.route(context);
    return (
      (headers.authorization !== undefined && !route.allowAuthorization) ||
      (headers.cookie !== undefined && !route.allowCookie)
    );
  }

  /** Who the request is, for `vary: ['user']`: `request.user.id`/`.sub`, else a hash of its credentials. */
  protected userOf(request: HttpRequest): string {
    const id = request.user?.id ?? request.user?.sub;
    if (id !== undefined && id !== null) return String(id);
    const { authorization, cookie } = request.headers;
    if (authorization === undefined && cookie === undefined) return 'anonymous';
    return createHash('sha256')
      .update(`${String(authorization ?? '')}\n${String(cookie ?? '')}`)
      .digest('base64url');
  }

  /** Sets `X-Cache`, only while the response is open (a `@Res()` handler may have answered already). */
  protected setCacheHeader(context: ExecutionContext, value: 'HIT' | 'MISS' | 'STALE' | 'BYPASS'): void {
    if (context.getType() !== 'http') return; // a message or a GraphQL field has no response headers of its own
    const adapter = this.httpAdapterHost?.httpAdapter;
    const response: unknown = context.getArgByIndex(1);
    if (adapter && responseOpen(response)) adapter.setHeader(response, X_CACHE_HEADER, value);
  }

  private async throughCache(
    context: ExecutionContext,
    next: CallHandler,
    key: string,
    route: CachePolicy,
  ): Promise<Observable<unknown>> {
    const service = this.cacheService;
    const http = context.getType() === 'http';
    let ttl = typeof route.ttl === 'function' ? await route.ttl(context) : route.ttl;
    if (!isValidTtl(ttl)) ttl = this.invalidTtl(route, ttl);
    const lifetime = ttl + route.swr;
    const start = service.seq;
    let ran = false;
    let refresh = false;
    let refreshUntil = 0;
    let call: FlightCall | undefined;
    let retagged: Promise<void> | undefined;
    let raw: { value: unknown; expires?: number };
    const compute = async () => {
      // The shared tag write runs while the handler does (a member recorded before its entry is harmless),
      // so neither this request nor the ones waiting on it wait for it on top of the handler.
      const tags = route.tags.length > 0 ? route.tags.map((tag) => resolve(tag, context)) : undefined;
      const tagged = tags && service.tagShared(key, tags, Date.now() + lifetime + TAG_GRACE);
      // A message handler's or a resolver's second argument is its transport context or its arguments, not a response.
      const response: unknown = http ? context.getArgByIndex(1) : undefined;
      const before = http ? { headers: headersOf(response), status: statusOf(response) } : undefined;
      const body = await singleValue(next.handle());
      if (tagged !== undefined) await tagged;
      if (!isSingleValue(body) || !this.isResponseCacheable(context, statusOf(response), body)) {
        throw new NotCacheable(body);
      }
      // What the handler set besides its body is stored with it and replayed on every request the entry serves;
      // a response meant for one client (no-store, private, a cookie it sets) is neither stored nor shared.
      const meta = before === undefined ? undefined : responseMeta(before, response);
      if (
        http &&
        (forbidsSharedStore(headersOf(response)) || (meta?.h !== undefined && setsCookie(Object.fromEntries(meta.h))))
      ) {
        throw new NotCacheable(body);
      }
      // A resolver's result is not sent as JSON: GraphQL serializes it field by field (a DateTime scalar takes a Date
      // and gives null for a string), so it goes to an L2 only if the store's serializer gives it back as it is.
      const envelope = service.envelope(body, lifetime, meta, context.getType<string>() === 'graphql');
      if (tags !== undefined) {
        service.tagLocal(key, tags, envelope.e);
        // Written again now: an eviction of the tag by another instance while the handler ran deleted the
        // first membership, and the entry stored next would belong to no shared tag until its TTL. Not awaited
        // here (it runs alongside the store of the entry; tagShared never rejects): the leader awaits it below.
        retagged = service.tagShared(key, tags, envelope.e + TAG_GRACE);
      }
      return envelope;
    };
    try {
      raw = (await service.cache.wrap<unknown>(
        key,
        async () => {
          ran = true;
          let work: Promise<CacheEnvelope>;
          if (!service.clustered) work = compute();
          else {
            // One computation across the instances: a miss takes any value stored meanwhile, a refresh a fresh one.
            call = { refresh, accepts: refresh ? (found) => found.e - Date.now() >= route.swr : acceptAny };
            work = service.computeOnce(key, compute, call);
          }
          // A background refresh that never settles must not keep the key from being refreshed again.
          return refresh ? service.boundRefresh(key, work, refreshUntil) : work;
        },
        {
          ttl: remainingTtl(lifetime),
          refreshThreshold:
            route.swr > 0
              ? service.refreshThreshold(key, route.swr, (until) => {
                  refresh = true;
                  refreshUntil = until;
                })
              : undefined,
          raw: true,
        },
      )) as unknown as { value: unknown; expires?: number };
    } catch (error) {
      if (isA(error, LeaderValue)) {
        // Computed by another instance while this request waited (it ran nothing here).
        const envelope = service.followed(key, error);
        if (route.stats !== undefined) route.stats.clusterFollowers++;
        if (route.tags.length > 0)
          service.tagLocal(
            key,
            route.tags.map((tag) => resolve(tag, context)),
            envelope.e,
          );
        return of(this.serve(context, envelope, 'MISS'));
      }
      // An error response says how it was served too (thrown by the handler, or by the one this request waited on).
      this.setCacheHeader(context, 'BYPASS');
      if (!isNotCacheable(error)) throw error;
      // Neither a stream nor another request's error response can be shared: a request that joined the leader's
      // call runs the handler itself.
      if (!ran) return next.handle();
      return error.stream ? (error.value as Observable<unknown>) : of(error.value);
    } finally {
      // A miss's lease, once its value is stored (or its computation failed); a refresh's is released when it ends.
      if (call !== undefined && !refresh) service.releaseLease(key, call);
    }
    const envelope = raw.value;
    if (!isEnvelope(envelope)) {
      // A value stored under this key by other code (CACHE_MANAGER, CacheService.set): served as it is.
      service.counters.hits++;
      if (route.stats !== undefined) route.stats.hits++;
      this.setCacheHeader(context, 'HIT');
      return of(envelope);
    }
    if (envelope.o === service.origin && envelope.s > start) {
      if (ran) {
        service.counters.misses++;
        if (route.stats !== undefined) route.stats.misses++;
        service.computed(key);
        // Its tags are recorded before its response goes out (the write ran alongside the store: no added wait).
        if (retagged !== undefined) await retagged;
      } else {
        service.counters.coalesced++;
        if (route.stats !== undefined) route.stats.coalesced++;
      }
      return of(this.serve(context, envelope, 'MISS'));
    }
    if (route.swr > 0 && (raw.expires === undefined || raw.expires - Date.now() < route.swr)) {
      service.counters.stale++;
      if (route.stats !== undefined) route.stats.stale++;
      return of(this.serve(context, envelope, 'STALE'));
    }
    service.counters.hits++;
    if (route.stats !== undefined) route.stats.hits++;
    return of(this.serve(context, envelope, 'HIT'));
  }

  /**
   * The body of a cached entry, after setting on this request's response what the handler that computed it set
   * (its status and headers) and `X-Cache`, while the response is open.
   */
  private serve(context: ExecutionContext, envelope: CacheEnvelope, how: 'HIT' | 'MISS' | 'STALE'): unknown {
    const meta = envelope.r;
    if (meta !== undefined && context.getType() === 'http') {
      const adapter = this.httpAdapterHost?.httpAdapter;
      const response: unknown = context.getArgByIndex(1);
      if (adapter && responseOpen(response)) {
        if (meta.s !== undefined) adapter.status(response, meta.s);
        // An array (several values of one header) is set as it is on both platforms.
        if (meta.h !== undefined)
          for (const [name, value] of meta.h) adapter.setHeader(response, name, value as string);
      }
    }
    this.setCacheHeader(context, how);
    return envelope.__ncBody;
  }

  /**
   * A microservice message (`rpc`) or a GraphQL field (`graphql`): cached only with `@Cached` on a `@MessagePattern`
   * handler or a `@Query` resolver (a global interceptor leaves every other handler alone), keyed on the pattern and
   * the data, or the field and its arguments, plus `vary`; evicted by `@CacheEvict` like a route.
   */
  private interceptCall(
    context: ExecutionContext,
    next: CallHandler,
    kind: 'rpc' | 'graphql',
  ): Observable<unknown> | Promise<Observable<unknown>> {
    if (handled.has(context)) return next.handle();
    handled.add(context);
    const handler = context.getHandler();
    let policy = this.handlers.get(handler);
    if (policy === undefined || policy.kind !== kind) {
      policy = resolveHandlerCache(this.reflector, kind, handler, context.getClass(), this.cacheService.defaultTtl);
      if (policy.cached) policy.stats = this.cacheService.methodStats(policy.name);
      this.handlers.set(handler, policy);
    }
    if (policy.evict !== undefined) return this.handleAndEvict(context, next, policy.evict);
    if (!policy.cached) return next.handle();
    const key = this.keyOfCall(context, policy);
    if (key === undefined) return next.handle();
    const hit = this.cacheService.peekFresh(key, policy.swr);
    if (hit !== undefined) {
      this.cacheService.counters.hits++;
      policy.stats!.hits++;
      return of(hit.__ncBody);
    }
    return this.throughCache(context, next, key, policy);
  }

  /** A call's key, or undefined: not cached (data that cannot be keyed, credentials without `vary`). */
  private keyOfCall(context: ExecutionContext, policy: HandlerCache): string | undefined {
    let key: string;
    try {
      key = callKey(context, policy);
    } catch (error) {
      if (!(error instanceof UnkeyableValue)) throw error;
      this.notKeyed(policy, CALL_NOT_KEYED(policy.name, error.message));
      return undefined;
    }
    if (policy.kind === 'rpc') return key;
    const request = graphqlRequest(context);
    if (request === undefined) {
      if (!policy.varyUser && policy.headers.length === 0) return key;
      this.notKeyed(policy, GRAPHQL_NO_REQUEST(policy.name));
      return undefined;
    }
    // The shared-cache rule of routes: a credentialed request is cached only when the key varies on who sends it.
    const { authorization, cookie } = request.headers;
    if ((authorization !== undefined && !policy.allowAuthorization) || (cookie !== undefined && !policy.allowCookie)) {
      return undefined;
    }
    if (policy.varyUser) key += `|user:${this.userOf(request as HttpRequest)}`;
    for (const name of policy.headers) key += `|${name}:${callHeaderPart(request.headers[name])}`;
    return key;
  }

  private notKeyed(policy: HandlerCache, message: string): void {
    const now = Date.now();
    if (now - policy.notKeyedAt < NOT_KEYED_LOG_INTERVAL) return;
    policy.notKeyedAt = now;
    this.logger.warn(message);
  }

  private async handleAndEvict(
    context: ExecutionContext,
    next: CallHandler,
    evict: CacheEvictOptions,
  ): Promise<Observable<unknown>> {
    const result = await lastValueFrom(next.handle(), { defaultValue: undefined });
    try {
      const tasks: Promise<void>[] = [];
      if (evict.keys?.length) tasks.push(this.cacheService.evictKeys(evict.keys.map((k) => resolve(k, context))));
      if (evict.tags?.length) tasks.push(this.cacheService.evictTags(evict.tags.map((t) => resolve(t, context))));
      await Promise.all(tasks);
    } catch (error) {
      this.cacheService.counters.errors++;
      this.logger.warn(
        EVICT_FAILED(`${context.getClass().name}.${context.getHandler().name}`),
        errorStack(error) ?? errorMessage(error),
      );
    }
    return of(result);
  }

  private route(context: ExecutionContext): RouteCache {
    const handler = context.getHandler();
    if (handler === this.lastHandler) return this.lastRoute as RouteCache;
    let route = this.routes.get(handler);
    if (route === undefined) {
      route = this.resolveRoute(handler, context.getClass());
      this.routes.set(handler, route);
    }
    this.lastHandler = handler;
    this.lastRoute = route;
    return route;
  }

  /** A TTL of 0, negative or Infinity (e.g. `@CacheTTL(0)`) would keep the entry forever: the module TTL is used. */
  private invalidTtl(route: CachePolicy, ttl: unknown): number {
    const fallback = this.cacheService.defaultTtl;
    if (!route.ttlWarned) {
      route.ttlWarned = true;
      this.logger.warn(ROUTE_TTL_INVALID(route.name, ttl, fallback));
    }
    return fallback;
  }

  private resolveRoute(handler: object, target: object): RouteCache {
    const get = <T>(key: string): T | undefined =>
      this.reflector.get<T>(key, handler as never) ?? this.reflector.get<T>(key, target as never);
    const cached = get<CachedOptions>(CACHED_METADATA) ?? {};
    const vary = cached.vary ?? [];
    const headers = vary
      .filter((v): v is `header:${string}` => v.startsWith('header:'))
      .map((v) => v.slice('header:'.length).toLowerCase());
    const varyUser = vary.includes('user');
    return {
      key: cached.key ?? this.reflector.get(CACHE_KEY_METADATA, handler as never) ?? undefined,
      ttl: cached.ttl ?? get(CACHE_TTL_METADATA) ?? this.cacheService.defaultTtl,
      // A background refresh runs the handler of the stale request, whose response was sent: a handler that writes to
      // it (`@Res({ passthrough: true })`) would fail every refresh. Such a route is served fresh until its TTL, then
      // computed again like a miss.
      swr: takesResponse(target, handler) ? 0 : (cached.staleWhileRevalidate ?? 0),
      varyQuery: vary.includes('query'),
      varyUser,
      headers,
      allowAuthorization: varyUser || headers.includes('authorization'),
      allowCookie: varyUser || headers.includes('cookie'),
      tags: cached.tags ?? [],
      evict: this.reflector.get<CacheEvictOptions>(CACHE_EVICT_METADATA, handler as never),
      streams: Reflect.getMetadata(SSE_METADATA, handler) === true,
      ownsResponse: ownsResponse(target, handler),
      name: `${(target as { name?: string }).name}.${(handler as { name?: string }).name}`,
      ttlWarned: false,
    };
  }
}
