import { Injectable, type OnModuleInit } from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants.js';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { CacheService, isValidTtl } from '../cache.service.js';
import { CACHE_EVICT_METADATA, CACHED_METADATA } from '../caching.constants.js';
import {
  METHOD_BOTH,
  METHOD_CLASS_DECORATOR,
  METHOD_NAME_CLASH,
  METHOD_NOT_ASYNC,
  METHOD_OPTION_ROUTE_ONLY,
  METHOD_REQUEST_SCOPED,
} from '../caching.messages.js';
import { InvalidCachedMethodError } from '../errors/invalid-cached-method.error.js';
import type { CachedOptions, CacheEvictOptions } from '../interfaces/cached-options.interface.js';
import { type ArgsPart, MethodCache, MethodEvict } from './method-cache.js';

const AsyncFunction = (async () => undefined).constructor;

/**
 * Metadata of other handler kinds: a GraphQL resolver (`graphql:*`), a microservice pattern (`microservices:*`), a
 * route. Their `@Cached` goes through the interceptor, never through a method wrapper.
 */
function isHandlerMetadata(key: unknown): boolean {
  return typeof key === 'string' && (key.startsWith('graphql:') || key.startsWith('microservices:'));
}

function handlesRequests(target: object): boolean {
  try {
    return Reflect.getMetadataKeys(target).some(isHandlerMetadata) || Reflect.hasOwnMetadata(PATH_METADATA, target);
  } catch {
    return false;
  }
}

/**
 * @internal Finds the `@Cached` and `@CacheEvict` methods of the providers at boot (not of controllers nor GraphQL
 * resolvers nor microservice handlers: those are cached per request by the interceptor) and replaces each on its
 * instance with one that goes through the cache. A method that cannot be wrapped fails `app.init()` naming it.
 */
@Injectable()
export class MethodsExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly cache: CacheService,
  ) {}

  onModuleInit(): void {
    const classes = new Map<string, unknown>();
    const wrapped = new Set<object>();
    for (const wrapper of this.discovery.getProviders()) {
      if (wrapper.isAlias) continue;
      const { instance } = wrapper;
      const staticTree = wrapper.isDependencyTreeStatic();
      const prototype = (
        instance && typeof instance === 'object'
          ? Object.getPrototypeOf(instance)
          : !staticTree && !wrapper.inject && typeof wrapper.metatype === 'function'
            ? wrapper.metatype.prototype
            : null
      ) as Record<string, unknown> | null;
      if (!prototype) continue;
      const ctor = prototype.constructor as ((...args: never[]) => unknown) | undefined;
      if (typeof ctor !== 'function' || handlesRequests(ctor)) continue;
      const className = ctor.name || String(wrapper.name);
      if (Reflect.getMetadata(CACHED_METADATA, ctor) !== undefined) {
        throw new InvalidCachedMethodError(METHOD_CLASS_DECORATOR(className));
      }
      for (const methodName of this.scanner.getAllMethodNames(prototype)) {
        const method = prototype[methodName];
        if (typeof method !== 'function') continue;
        const cached = Reflect.getMetadata(CACHED_METADATA, method) as CachedOptions | undefined;
        const evict = Reflect.getMetadata(CACHE_EVICT_METADATA, method) as CacheEvictOptions | undefined;
        if (cached === undefined && evict === undefined) continue;
        if (handlesRequests(method)) continue;
        const name = `${className}.${methodName}`;
        const decorator = cached !== undefined ? '@Cached' : '@CacheEvict';
        if (cached !== undefined && evict !== undefined) throw new InvalidCachedMethodError(METHOD_BOTH(name));
        if (!staticTree || !instance || typeof instance !== 'object') {
          throw new InvalidCachedMethodError(METHOD_REQUEST_SCOPED(decorator, name));
        }
        const returnType: unknown = Reflect.getMetadata('design:returntype', prototype, methodName);
        if (!(method instanceof AsyncFunction) && returnType !== Promise) {
          throw new InvalidCachedMethodError(METHOD_NOT_ASYNC(decorator, name));
        }
        const seen = classes.get(className);
        if (seen !== undefined && seen !== ctor && cached !== undefined && cached.key === undefined) {
          throw new InvalidCachedMethodError(METHOD_NAME_CLASH(className));
        }
        classes.set(className, ctor);
        if (wrapped.has(instance) && Object.hasOwn(instance, methodName)) continue;
        const original = method as (...args: unknown[]) => unknown;
        let replacement: (...args: unknown[]) => unknown;
        if (cached !== undefined) {
          if (cached.vary !== undefined) throw new InvalidCachedMethodError(METHOD_OPTION_ROUTE_ONLY(name, 'vary'));
          const ttl = cached.ttl ?? this.cache.defaultTtl;
          const def = {
            name,
            key: cached.key as ArgsPart | undefined,
            ttl: isValidTtl(ttl) ? ttl : this.cache.defaultTtl,
            swr: cached.staleWhileRevalidate ?? 0,
            tags: (cached.tags ?? []) as ArgsPart[],
          };
          replacement = new MethodCache(this.cache, def, original, this.cache.methodStats(name)).wrapper();
        } else {
          const options = evict as CacheEvictOptions;
          replacement = new MethodEvict(
            this.cache,
            name,
            (options.keys ?? []) as ArgsPart[],
            (options.tags ?? []) as ArgsPart[],
            original,
          ).wrapper();
        }
        Object.defineProperty(instance, methodName, {
          value: replacement,
          writable: true,
          configurable: true,
          enumerable: false,
        });
        wrapped.add(instance);
      }
    }
  }
}
