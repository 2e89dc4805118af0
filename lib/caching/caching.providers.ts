import { CACHE_MANAGER } from '@nestjs/cache-manager';
import type { DynamicModule, Provider } from '@nestjs/common';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';
import { CacheService } from './cache.service.js';
import { ResponseCacheInterceptor } from './response-cache.interceptor.js';

/**
 * Modules the caching pattern needs: none. `CACHE_MANAGER` of `@nestjs/cache-manager` is provided below as the
 * same cache `CacheService` uses, instead of a second, unbounded one from `CacheModule.register()`.
 */
export function createCachingImports(): DynamicModule[] {
  return [];
}

/** Providers of the caching pattern, registered (and exported) by the global `ConcurrencyModule`. */
export function createCachingProviders(options: ConcurrencyModuleOptions | undefined): Provider[] {
  void options;
  return [
    CacheService,
    { provide: CACHE_MANAGER, inject: [CacheService], useFactory: (service: CacheService) => service.cache },
    ResponseCacheInterceptor,
  ];
}
