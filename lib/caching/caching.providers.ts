import { CACHE_MANAGER } from '@nestjs/cache-manager';
import type { Provider } from '@nestjs/common';
import { CacheService } from './cache.service.js';
import { CachedHandlersExplorer } from './handlers/cached-handlers.explorer.js';
import { ResponseCacheInterceptor } from './response-cache.interceptor.js';
import { MethodsExplorer } from './methods/methods.explorer.js';

/**
 * Providers of the caching pattern, registered (and exported) by the global `ConcurrencyModule`. `CACHE_MANAGER` of
 * `@nestjs/cache-manager` is the same cache `CacheService` uses, instead of a second, unbounded one from
 * `CacheModule.register()` (so no module is imported).
 */
export function createCachingProviders(): Provider[] {
  return [
    CacheService,
    { provide: CACHE_MANAGER, inject: [CacheService], useFactory: (service: CacheService) => service.cache },
    ResponseCacheInterceptor,
    MethodsExplorer,
    CachedHandlersExplorer,
  ];
}
