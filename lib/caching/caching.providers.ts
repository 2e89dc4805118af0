import { CacheModule } from '@nestjs/cache-manager';
import type { DynamicModule, Provider } from '@nestjs/common';
import type { ConcurrencyModuleOptions } from '../interfaces/concurrency-module-options.interface.js';

/** Modules the caching pattern needs: `@nestjs/cache-manager`, so users do not import `CacheModule` themselves. */
export function createCachingImports(): DynamicModule[] {
  return [CacheModule.register()];
}

/** Providers of the caching pattern, registered by `ConcurrencyModule`. */
export function createCachingProviders(options: ConcurrencyModuleOptions | undefined): Provider[] {
  void options;
  return [];
}
