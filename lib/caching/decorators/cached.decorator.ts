import { applyDecorators, SetMetadata, UseInterceptors } from '@nestjs/common';
import { CACHED_METADATA } from '../caching.constants.js';
import type { CachedOptions } from '../interfaces/cached-options.interface.js';
import { ResponseCacheInterceptor } from '../response-cache.interceptor.js';
import { validateCachedOptions } from './validate.js';

/**
 * Caches the result of a GET/HEAD handler (or of every GET/HEAD handler of a controller): one handler call per key
 * under concurrency, `X-Cache: HIT | MISS | STALE | BYPASS`. TTLs in milliseconds.
 */
export function Cached(options: CachedOptions = {}): ClassDecorator & MethodDecorator {
  validateCachedOptions(options);
  return applyDecorators(SetMetadata(CACHED_METADATA, options), UseInterceptors(ResponseCacheInterceptor));
}
