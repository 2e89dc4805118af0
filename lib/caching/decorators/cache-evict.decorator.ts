import { applyDecorators, SetMetadata, UseInterceptors } from '@nestjs/common';
import { CACHE_EVICT_METADATA } from '../caching.constants.js';
import type { CacheEvictOptions } from '../interfaces/cached-options.interface.js';
import { ResponseCacheInterceptor } from '../response-cache.interceptor.js';
import { validateEvictOptions } from './validate.js';

/** After the handler succeeded, evicts `keys` and every entry of `tags` (here and, with Redis, on other instances). */
export function CacheEvict(options: CacheEvictOptions): MethodDecorator {
  validateEvictOptions(options);
  return applyDecorators(SetMetadata(CACHE_EVICT_METADATA, options), UseInterceptors(ResponseCacheInterceptor));
}
