export { CacheService } from './cache.service.js';
export { CacheEvict } from './decorators/cache-evict.decorator.js';
export { Cached } from './decorators/cached.decorator.js';
export { InvalidCachedMethodError } from './errors/invalid-cached-method.error.js';
export { IsolatedTimeoutError } from './errors/isolated-timeout.error.js';
export * from './interfaces/cache-module-options.interface.js';
export * from './interfaces/cached-options.interface.js';
export { ResponseCacheInterceptor } from './response-cache.interceptor.js';
