/**
 * Metadata keys of `@nestjs/microservices` and `@nestjs/graphql`, read by name: neither package is a dependency of
 * this library (they are not peers), so they are never imported. The values are the same on their Nest 11 and Nest 12
 * lines. Internal.
 */

/** `@MessagePattern` / `@EventPattern`: the handler's patterns (an array). */
export const PATTERN_METADATA = 'microservices:pattern';
/** The transport a `@MessagePattern(pattern, transport)` handler is bound to (a `Transport` number or a Symbol). */
export const TRANSPORT_METADATA = 'microservices:transport';
/** `@MessagePattern` (1) or `@EventPattern` (2). */
export const PATTERN_HANDLER_METADATA = 'microservices:handler_type';
export const MESSAGE_HANDLER = 1;
export const EVENT_HANDLER = 2;
/** `@Query` / `@Mutation` / `@Subscription`: `'Query' | 'Mutation' | 'Subscription'` (or a type name). */
export const RESOLVER_TYPE_METADATA = 'graphql:resolver_type';
/** `@ResolveField`: true. */
export const RESOLVER_PROPERTY_METADATA = 'graphql:resolve_property';

/** What a handler is, as far as caching is concerned. */
export type HandlerRole =
  | { kind: 'message'; patterns: unknown[]; transport: unknown }
  | { kind: 'event' }
  | { kind: 'grpc-stream' }
  | { kind: 'query' }
  | { kind: 'mutation' }
  | { kind: 'subscription' }
  | { kind: 'field' }
  | { kind: 'other' };

/** The role of `handler` (a method) from its microservice or GraphQL metadata. */
export function handlerRole(handler: object): HandlerRole {
  const patternType: unknown = Reflect.getMetadata(PATTERN_HANDLER_METADATA, handler);
  if (patternType === EVENT_HANDLER) return { kind: 'event' };
  if (patternType === MESSAGE_HANDLER) {
    const patterns = Reflect.getMetadata(PATTERN_METADATA, handler) as unknown;
    const list = Array.isArray(patterns) ? (patterns as unknown[]) : [patterns];
    // @GrpcStreamMethod / @GrpcStreamCall: the request is a stream, not a value to key on.
    if (
      list.some((p) => typeof p === 'object' && p !== null && isStreaming((p as { streaming?: unknown }).streaming))
    ) {
      return { kind: 'grpc-stream' };
    }
    return { kind: 'message', patterns: list, transport: Reflect.getMetadata(TRANSPORT_METADATA, handler) as unknown };
  }
  if (Reflect.getMetadata(RESOLVER_PROPERTY_METADATA, handler) === true) return { kind: 'field' };
  const resolverType: unknown = Reflect.getMetadata(RESOLVER_TYPE_METADATA, handler);
  if (resolverType === 'Query') return { kind: 'query' };
  if (resolverType === 'Mutation') return { kind: 'mutation' };
  if (resolverType === 'Subscription') return { kind: 'subscription' };
  return { kind: 'other' };
}

function isStreaming(streaming: unknown): boolean {
  return typeof streaming === 'string' && streaming !== 'no_stream';
}
