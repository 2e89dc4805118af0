import { applyDecorators, type ExecutionContext, SetMetadata, UseInterceptors } from '@nestjs/common';
import { CACHED_METADATA } from '../caching.constants.js';
import type { CachedOptions } from '../interfaces/cached-options.interface.js';
import { ResponseCacheInterceptor } from '../response-cache.interceptor.js';
import { validateCachedOptions } from './validate.js';

/**
 * Caches the result of a GET/HEAD handler (or of every GET/HEAD handler of a controller): one handler call per key
 * under concurrency, `X-Cache: HIT | MISS | STALE | BYPASS`. On a method of a provider (a plain `@Injectable()`
 * service), the module wraps the method at boot: one call per key (`Class.method:` + a hash of the arguments, or
 * `key: (...args) => string`) under concurrency, the same ttl, stale-while-revalidate, tags, L1/L2 and single flight.
 * TTLs in milliseconds.
 */
export function Cached<A extends unknown[] = [context: ExecutionContext]>(
  options: CachedOptions<A> = {},
): ClassDecorator & MethodDecorator {
  validateCachedOptions(options as CachedOptions);
  return applyDecorators(SetMetadata(CACHED_METADATA, options), UseInterceptors(ResponseCacheInterceptor));
}
