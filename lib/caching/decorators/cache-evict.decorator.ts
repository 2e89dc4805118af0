import { applyDecorators, type ExecutionContext, SetMetadata, UseInterceptors } from '@nestjs/common';
import { CACHE_EVICT_METADATA } from '../caching.constants.js';
import type { CacheEvictOptions } from '../interfaces/cached-options.interface.js';
import { ResponseCacheInterceptor } from '../response-cache.interceptor.js';
import { validateEvictOptions } from './validate.js';

/**
 * After the handler succeeded, evicts `keys` and every entry of `tags` (here and, with Redis, on other instances). On
 * a provider method: after the method resolved (functions of its arguments), never after a throw.
 */
export function CacheEvict<A extends unknown[] = [context: ExecutionContext]>(
  options: CacheEvictOptions<A>,
): MethodDecorator {
  validateEvictOptions(options as CacheEvictOptions);
  return applyDecorators(SetMetadata(CACHE_EVICT_METADATA, options), UseInterceptors(ResponseCacheInterceptor));
}
