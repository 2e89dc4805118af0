import type { CachedOptions, CacheEvictOptions } from '../interfaces/cached-options.interface.js';

const CACHED_KEYS = ['ttl', 'key', 'vary', 'staleWhileRevalidate', 'tags'];
const EVICT_KEYS = ['keys', 'tags'];

function fail(decorator: string, option: string, expected: string): never {
  throw new TypeError(`Invalid ${decorator} option "${option}": expected ${expected}.`);
}

function known(decorator: string, options: object, allowed: string[]): void {
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) fail(decorator, key, `one of ${allowed.join(', ')}`);
  }
}

function parts(decorator: string, option: string, value: unknown): void {
  if (value === undefined) return;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' && typeof v !== 'function')) {
    fail(
      decorator,
      option,
      'an array of strings or functions (of the ExecutionContext on a route, of the arguments on a provider method)',
    );
  }
}

export function validateCachedOptions(options: CachedOptions): void {
  known('@Cached', options, CACHED_KEYS);
  const { ttl, staleWhileRevalidate: swr, key, vary } = options;
  if (ttl !== undefined && !(typeof ttl === 'number' && ttl > 0 && ttl !== Infinity)) {
    fail('@Cached', 'ttl', 'a finite number of ms > 0 (never forever)');
  }
  if (swr !== undefined && !(typeof swr === 'number' && swr >= 0 && swr !== Infinity)) {
    fail('@Cached', 'staleWhileRevalidate', 'a finite number of ms >= 0');
  }
  if (key !== undefined && typeof key !== 'string' && typeof key !== 'function') {
    fail(
      '@Cached',
      'key',
      'a string or a function (of the ExecutionContext on a route, of the arguments on a provider method)',
    );
  }
  if (
    vary !== undefined &&
    (!Array.isArray(vary) ||
      vary.some((v) => v !== 'query' && v !== 'user' && !(typeof v === 'string' && /^header:.+/.test(v))))
  ) {
    fail('@Cached', 'vary', `an array of 'query', 'user' or 'header:<name>'`);
  }
  parts('@Cached', 'tags', options.tags);
}

export function validateEvictOptions(options: CacheEvictOptions): void {
  if (options === null || typeof options !== 'object') fail('@CacheEvict', 'options', '{ keys?, tags? }');
  known('@CacheEvict', options, EVICT_KEYS);
  parts('@CacheEvict', 'keys', options.keys);
  parts('@CacheEvict', 'tags', options.tags);
}
