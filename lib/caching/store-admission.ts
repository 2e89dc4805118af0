import { Buffer } from 'node:buffer';
import { Keyv } from 'keyv';
import { errorMessage } from '../utils/describe.js';
import { UNSTORABLE_SERIALIZE, UNSTORABLE_SIZE, UNSTORABLE_TYPE } from './caching.messages.js';

/** Keyv's own serializer (JSON with Buffers as base64), shared by every Keyv that was not given another one. */
let keyvDefaultSerialize: unknown;

/** Whether `keyv` writes values with Keyv's default serializer (JSON), which changes every value that is not JSON. */
export function usesJsonSerializer(keyv: Keyv): boolean {
  keyvDefaultSerialize ??= new Keyv().serialize;
  return keyv.serialize === keyvDefaultSerialize;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** What a value that JSON would change is, for a message: `a Date`, `a bigint`, `NaN`, ... */
function kindOf(value: unknown): string {
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value); // NaN, Infinity, -Infinity
  if (value === undefined) return 'undefined';
  if (typeof value !== 'object' || value === null) return `a ${typeof value}`;
  try {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    return typeof name === 'string' && name !== '' ? `a ${name}` : 'an object with a prototype of its own';
  } catch {
    return 'an object that cannot be inspected';
  }
}

/**
 * Where and what in `value` JSON (Keyv's default serializer) would not give back as it is: a Date (a string), a Map
 * or a Set (`{}`), a class instance (a plain object), a bigint (an error), undefined or a function in an object
 * (dropped), NaN or Infinity (null), -0 (0), a cycle (an error); undefined when it comes back equal. Buffers are kept
 * by Keyv. Internal.
 */
export function jsonChanges(value: unknown): string | undefined {
  const ancestors = new Set<object>();
  const walk = (v: unknown, path: string): string | undefined => {
    switch (typeof v) {
      case 'string':
      case 'boolean':
        return undefined;
      case 'number':
        return Number.isFinite(v) && !Object.is(v, -0) ? undefined : `${path} is ${kindOf(v)}`;
      case 'object':
        break;
      default:
        return `${path} is ${kindOf(v)}`; // undefined, bigint, symbol, function
    }
    if (v === null || Buffer.isBuffer(v)) return undefined;
    const object = v;
    if (ancestors.has(object)) return `${path} is a cycle (it contains itself)`;
    ancestors.add(object);
    try {
      if (Array.isArray(object)) {
        for (let i = 0; i < object.length; i++) {
          const found = walk(object[i], `${path}[${i}]`);
          if (found !== undefined) return found;
        }
        return undefined;
      }
      const proto = Object.getPrototypeOf(object) as unknown;
      if (proto !== Object.prototype && proto !== null) return `${path} is ${kindOf(object)}`;
      for (const key of Object.keys(object)) {
        const found = walk(
          (object as Record<string, unknown>)[key],
          IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`,
        );
        if (found !== undefined) return found;
      }
      return undefined;
    } finally {
      ancestors.delete(object);
    }
  };
  try {
    return walk(value, 'value');
  } catch (error) {
    return `value cannot be inspected (${errorMessage(error)})`;
  }
}

/**
 * Why `value` must not be written to a store, or undefined: JSON would change `exact.value` (the caller's value in it, when
 * every caller must get it back as it is, and the store uses
 * Keyv's JSON serializer), the store's serializer fails on it, or it is larger than `maxBytes` once serialized (a
 * server with a smaller limit drops the connection on it). Never throws. Internal.
 */
export async function refusal(
  keyv: Keyv,
  value: unknown,
  exact: { value: unknown } | undefined,
  maxBytes: number,
): Promise<string | undefined> {
  if (exact !== undefined && usesJsonSerializer(keyv)) {
    const changed = jsonChanges(exact.value);
    if (changed !== undefined) return UNSTORABLE_TYPE(changed);
  }
  const serialize = keyv.serialize;
  if (typeof serialize !== 'function') return undefined; // the store keeps the value itself (a Map)
  let text: unknown;
  try {
    text = await serialize({ value, expires: Number.MAX_SAFE_INTEGER });
  } catch (error) {
    return UNSTORABLE_SERIALIZE(errorMessage(error));
  }
  const bytes = typeof text === 'string' ? Buffer.byteLength(text) : Buffer.isBuffer(text) ? text.length : 0;
  return bytes > maxBytes ? UNSTORABLE_SIZE(bytes, maxBytes) : undefined;
}
