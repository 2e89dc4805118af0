import { CACHE_KEY_METADATA, CACHE_TTL_METADATA } from '@nestjs/cache-manager';
import type { ExecutionContext } from '@nestjs/common';
import type { Reflector } from '@nestjs/core';
import { createHash } from 'node:crypto';
import { CACHE_EVICT_METADATA, CACHED_METADATA } from '../caching.constants.js';
import type { CachedOptions, CacheEvictOptions, MethodCacheStats } from '../interfaces/cached-options.interface.js';
import { handlerRole } from './handler-metadata.js';
import { stableHash } from './stable-hash.js';

type KeyPart = string | ((context: ExecutionContext) => string);

/**
 * What the interceptor resolved once per microservice or GraphQL handler (the sibling of an HTTP route's policy).
 * Internal.
 */
export interface HandlerCache {
  kind: 'rpc' | 'graphql';
  /** Cached: a `@MessagePattern` handler or a `@Query` resolver with `@Cached` (on the method or its class). */
  cached: boolean;
  key: KeyPart | undefined;
  ttl: number | ((context: ExecutionContext) => number | Promise<number>);
  swr: number;
  /** `vary: ['query']`: a custom `key` gets the hash of the data / arguments too (the default key always has it). */
  varyArgs: boolean;
  varyUser: boolean;
  headers: string[];
  allowAuthorization: boolean;
  allowCookie: boolean;
  tags: KeyPart[];
  evict: CacheEvictOptions | undefined;
  /** The message patterns of a `@MessagePattern` handler, as they appear in keys. */
  patterns: string[];
  /**
   * `rpc` or, for a handler bound to one transport, `rpc[<transport>]`: two handlers of one pattern on two transports
   * (a hybrid app) answer differently and must not share entries.
   */
  prefix: string;
  /** `Class.method`, for messages and `CacheService.stats().methods`. */
  name: string;
  /** This handler's counters in `CacheService.stats().methods` (set by the interceptor when it caches). */
  stats?: MethodCacheStats;
  ttlWarned: boolean;
  /** When a call that could not be keyed was last logged (ms). */
  notKeyedAt: number;
}

/** The part of a GraphQL context and resolve info the key is made of. */
interface GqlInfo {
  fieldName?: unknown;
  parentType?: { name?: unknown };
}

/** A pattern as it appears in a key: a string as it is, anything else as JSON with sorted keys (Nest's own form). */
export function patternText(pattern: unknown): string {
  if (typeof pattern === 'string') return pattern;
  try {
    return JSON.stringify(sortKeys(pattern, 0)) ?? String(pattern);
  } catch {
    return `#${stableHash(pattern, 'pattern')}`;
  }
}

function transportText(transport: unknown): string {
  if (typeof transport === 'symbol') return transport.description ?? 'symbol';
  return typeof transport === 'number' || typeof transport === 'string' ? String(transport) : 'custom';
}

function sortKeys(value: unknown, depth: number): unknown {
  if (depth > 32 || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map((v) => sortKeys(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(value).sort()) out[key] = sortKeys((value as Record<string, unknown>)[key], depth + 1);
  return out;
}

/** Resolves the caching policy of a microservice or GraphQL handler (once per handler). */
export function resolveHandlerCache(
  reflector: Reflector,
  kind: 'rpc' | 'graphql',
  handler: object,
  target: object,
  defaultTtl: number,
): HandlerCache {
  const get = <T>(key: string): T | undefined =>
    reflector.get<T>(key, handler as never) ?? reflector.get<T>(key, target as never);
  const options = get<CachedOptions>(CACHED_METADATA);
  const role = handlerRole(handler);
  const cacheable = kind === 'rpc' ? role.kind === 'message' : role.kind === 'query';
  const cached = options ?? {};
  const vary = cached.vary ?? [];
  const headers = vary
    .filter((v): v is `header:${string}` => v.startsWith('header:'))
    .map((v) => v.slice('header:'.length).toLowerCase());
  const varyUser = vary.includes('user');
  return {
    kind,
    // A message has no user nor headers: a policy that varies on them is refused at boot; here it is never cached.
    cached: options !== undefined && cacheable && !(kind === 'rpc' && (varyUser || headers.length > 0)),
    key: cached.key ?? reflector.get(CACHE_KEY_METADATA, handler as never) ?? undefined,
    ttl: cached.ttl ?? get(CACHE_TTL_METADATA) ?? defaultTtl,
    swr: cached.staleWhileRevalidate ?? 0,
    varyArgs: vary.includes('query'),
    varyUser,
    headers,
    allowAuthorization: varyUser || headers.includes('authorization'),
    allowCookie: varyUser || headers.includes('cookie'),
    tags: cached.tags ?? [],
    evict: reflector.get<CacheEvictOptions>(CACHE_EVICT_METADATA, handler as never),
    patterns: role.kind === 'message' ? role.patterns.map(patternText) : [],
    prefix: role.kind === 'message' && role.transport != null ? `rpc[${transportText(role.transport)}]` : 'rpc',
    name: `${(target as { name?: string }).name}.${(handler as { name?: string }).name}`,
    ttlWarned: false,
    notKeyedAt: -Infinity,
  };
}

/** The HTTP request of a GraphQL call (Apollo and Mercurius put it on the context as `req`), if any. */
export function graphqlRequest(context: ExecutionContext): GqlRequest | undefined {
  const ctx = context.getArgByIndex<{ req?: unknown; request?: unknown } | undefined>(2);
  const req = ctx?.req ?? ctx?.request;
  return typeof req === 'object' && req !== null && typeof (req as GqlRequest).headers === 'object'
    ? (req as GqlRequest)
    : undefined;
}

export interface GqlRequest {
  headers: Record<string, string | string[] | undefined>;
  user?: { id?: unknown; sub?: unknown };
}

/**
 * The base of a call's key (before `vary` parts): the `key` option, else `rpc:<pattern>:<hash of the data>` for a
 * message, `graphql:<Type>.<field>:<hash of the arguments>` for a query. Throws `UnkeyableValue` for data that cannot
 * be keyed.
 */
export function callKey(context: ExecutionContext, policy: HandlerCache): string {
  const rpc = policy.kind === 'rpc';
  const args = () => stableHash(context.getArgByIndex(rpc ? 0 : 1), rpc ? 'data' : 'args');
  if (policy.key !== undefined) {
    const key = typeof policy.key === 'function' ? policy.key(context) : policy.key;
    return policy.varyArgs ? `${key}:${args()}` : key;
  }
  if (rpc) return `${policy.prefix}:${messagePattern(context, policy)}:${args()}`;
  const info = context.getArgByIndex<GqlInfo | undefined>(3);
  const type = info?.parentType?.name;
  const field = info?.fieldName;
  const name = typeof type === 'string' && typeof field === 'string' ? `${type}.${field}` : policy.name; // no resolve info (a resolver called by other code): the class and method
  return `graphql:${name}:${args()}`;
}

/** The pattern a message came with: the handler's only one, else the one its transport context names. */
function messagePattern(context: ExecutionContext, policy: HandlerCache): string {
  const { patterns } = policy;
  if (patterns.length === 1) return patterns[0];
  const ctx = context.getArgByIndex<{ getPattern?: () => unknown } | undefined>(1);
  try {
    const pattern = typeof ctx?.getPattern === 'function' ? ctx.getPattern() : undefined;
    if (typeof pattern === 'string' && patterns.includes(pattern)) return pattern;
  } catch {
    // a context without a readable pattern
  }
  return patterns.join('|');
}

/** A vary header's value in a key: hashed, so credentials never appear in stores or messages. */
export function headerPart(value: string | string[] | undefined): string {
  if (value === undefined) return '';
  return createHash('sha256')
    .update(Array.isArray(value) ? value.join(',') : value)
    .digest('base64url');
}
