import { Injectable, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { CacheService } from '../cache.service.js';
import { CACHED_METADATA } from '../caching.constants.js';
import {
  CACHED_EVENT_HANDLER,
  CACHED_FIELD,
  CACHED_GRPC_STREAM,
  CACHED_MUTATION,
  CACHED_RPC_VARY,
  CACHED_SUBSCRIPTION,
} from '../caching.messages.js';
import type { CachedOptions } from '../interfaces/cached-options.interface.js';
import { handlerRole } from './handler-metadata.js';

/**
 * @internal Refuses at boot (`app.init()` fails naming the handler) a `@Cached` that could never cache: on an
 * `@EventPattern` handler, a streaming gRPC method, a GraphQL `@Mutation`, `@Subscription` or `@ResolveField`, and a
 * message handler whose `@Cached` (its own or its class's) varies on the user or a header. A class-level `@Cached`
 * leaves the event handlers, mutations and field resolvers of its class alone, as it leaves POST routes alone.
 * Each handler that caches gets its counters in `CacheService.stats().methods` from boot, as a provider method does.
 */
@Injectable()
export class CachedHandlersExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly cache: CacheService,
  ) {}

  onModuleInit(): void {
    for (const wrapper of [...this.discovery.getControllers(), ...this.discovery.getProviders()]) {
      if (wrapper.isAlias) continue;
      const type = (wrapper.instance?.constructor ?? wrapper.metatype) as unknown;
      if (typeof type !== 'function' || typeof type.prototype !== 'object' || type.prototype === null) continue;
      const prototype = type.prototype as Record<string, unknown>;
      const onClass = Reflect.getMetadata(CACHED_METADATA, type) as CachedOptions | undefined;
      for (const methodName of this.scanner.getAllMethodNames(prototype)) {
        const method = prototype[methodName];
        if (typeof method !== 'function') continue;
        const own = Reflect.getMetadata(CACHED_METADATA, method) as CachedOptions | undefined;
        if (own === undefined && onClass === undefined) continue;
        const { kind } = handlerRole(method);
        const message = refusal(kind, own, onClass, `${type.name}.${methodName}`);
        if (message !== undefined) throw new TypeError(message);
        if (kind === 'message' || kind === 'query') this.cache.methodStats(`${type.name}.${methodName}`);
      }
    }
  }
}

function refusal(
  kind: ReturnType<typeof handlerRole>['kind'],
  own: CachedOptions | undefined,
  onClass: CachedOptions | undefined,
  name: string,
): string | undefined {
  if (kind === 'message') {
    const vary = (own ?? onClass)?.vary?.find((v) => v === 'user' || v.startsWith('header:'));
    return vary === undefined ? undefined : CACHED_RPC_VARY(name, vary);
  }
  if (own === undefined) return undefined; // a class-level @Cached caches what can be cached only
  switch (kind) {
    case 'event':
      return CACHED_EVENT_HANDLER(name);
    case 'grpc-stream':
      return CACHED_GRPC_STREAM(name);
    case 'mutation':
      return CACHED_MUTATION(name);
    case 'subscription':
      return CACHED_SUBSCRIPTION(name);
    case 'field':
      return CACHED_FIELD(name);
    default:
      return undefined;
  }
}
