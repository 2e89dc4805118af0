import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { ARGUMENT_UNKEYABLE } from '../caching.messages.js';

/** The longest canonical form of a call's arguments that is hashed into a key (characters). Larger: refused. */
export const MAX_KEY_SOURCE = 256 * 1024;
/** The deepest nesting of a call's arguments that is keyed. Deeper: refused. */
export const MAX_KEY_DEPTH = 64;

/** Why a call's arguments cannot be keyed: `path` names the argument (`args[0].items[3]`). Internal. */
export class UnkeyableArgument extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(ARGUMENT_UNKEYABLE(path, reason));
    this.name = 'UnkeyableArgument';
  }
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const prop = (path: string, key: string) =>
  IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;

/** A view of memory (a Buffer, a typed array, a DataView): its type and bytes. */
function bytesOf(value: ArrayBufferView): string {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64');
}

function nameOf(value: object): string | undefined {
  const proto = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
  if (proto === null || proto === Object.prototype) return undefined;
  const name = proto.constructor?.name;
  return typeof name === 'string' && name !== '' ? name : 'anonymous class';
}

/**
 * The canonical text of a call's arguments: equal content gives equal text whatever the order of object keys, Map
 * entries or Set members; different content gives different text (strings are quoted, every other kind is tagged:
 * `1n`, `undefined`, `NaN`, `-0`, `Date(...)`, `Map{...}`, `Set[...]`, `Buffer(base64)`, `new "Name"{...}`).
 * A class instance is keyed by its class name and own enumerable properties; one without any (a Promise, an
 * AbortSignal, a service) is refused, as are functions, symbols, symbol-keyed properties, cycles, more than
 * `MAX_KEY_DEPTH` levels and more than `MAX_KEY_SOURCE` characters. Throws `UnkeyableArgument`. Internal.
 */
export function canonicalArguments(args: readonly unknown[]): string {
  const ancestors = new Set<object>();
  let length = 0;
  let out: string[] = [];
  /** The canonical text of one nested value on its own (a Map entry's key or value, a Set member). */
  const apart = (v: unknown, path: string, depth: number): string => {
    const outer = out;
    out = [];
    try {
      walk(v, path, depth);
      return out.join('');
    } finally {
      out = outer;
    }
  };
  const push = (text: string, path: string) => {
    length += text.length;
    if (length > MAX_KEY_SOURCE) {
      throw new UnkeyableArgument(path, `the arguments are larger than ${MAX_KEY_SOURCE} characters once keyed`);
    }
    out.push(text);
  };
  function walk(v: unknown, path: string, depth: number): void {
    switch (typeof v) {
      case 'string':
        return push(JSON.stringify(v), path);
      case 'number':
        return push(Object.is(v, -0) ? '-0' : String(v), path);
      case 'boolean':
        return push(v ? 'true' : 'false', path);
      case 'undefined':
        return push('undefined', path);
      case 'bigint':
        return push(`${v}n`, path);
      case 'symbol':
        throw new UnkeyableArgument(path, 'is a symbol (two symbols with one description are different values)');
      case 'function':
        throw new UnkeyableArgument(path, 'is a function');
    }
    if (v === null) return push('null', path);
    const object = v as object;
    if (depth > MAX_KEY_DEPTH) throw new UnkeyableArgument(path, `is nested deeper than ${MAX_KEY_DEPTH} levels`);
    if (ancestors.has(object)) throw new UnkeyableArgument(path, 'is a cycle (it contains itself)');
    ancestors.add(object);
    try {
      if (Array.isArray(object)) {
        push('[', path);
        for (let i = 0; i < object.length; i++) {
          if (i > 0) push(',', path);
          walk(object[i], `${path}[${i}]`, depth + 1);
        }
        return push(']', path);
      }
      if (ArrayBuffer.isView(object)) {
        return push(`${Buffer.isBuffer(object) ? 'Buffer' : (nameOf(object) ?? 'View')}(${bytesOf(object)})`, path);
      }
      if (object instanceof Date) return push(`Date(${object.getTime()})`, path);
      if (object instanceof RegExp) return push(`RegExp(${JSON.stringify(object.toString())})`, path);
      if (object instanceof URL) return push(`URL(${JSON.stringify(object.href)})`, path);
      if (object instanceof Map) {
        const entries: string[] = [];
        for (const [key, value] of object) {
          const k = apart(key, `${path}.<key>`, depth + 1);
          entries.push(`${k}=>${apart(value, `${path}.get(${k.length > 40 ? '...' : k})`, depth + 1)}`);
        }
        return push(`Map{${entries.sort().join(',')}}`, path);
      }
      if (object instanceof Set) {
        const members: string[] = [];
        for (const member of object) members.push(apart(member, `${path}.<member>`, depth + 1));
        return push(`Set[${members.sort().join(',')}]`, path);
      }
      const name = nameOf(object);
      const keys = Object.keys(object).sort();
      if (name !== undefined && (object instanceof Promise || keys.length === 0)) {
        throw new UnkeyableArgument(path, `is ${/^[aeiou]/i.test(name) ? 'an' : 'a'} ${name} with no data of its own`);
      }
      if (Object.getOwnPropertySymbols(object).length > 0) {
        throw new UnkeyableArgument(path, 'has symbol-keyed properties');
      }
      if (name !== undefined) push(`new ${JSON.stringify(name)}`, path);
      push('{', path);
      for (let i = 0; i < keys.length; i++) {
        if (i > 0) push(',', path);
        push(`${JSON.stringify(keys[i])}:`, path);
        walk((object as Record<string, unknown>)[keys[i]], prop(path, keys[i]), depth + 1);
      }
      return push('}', path);
    } finally {
      ancestors.delete(object);
    }
  }
  try {
    push('(', 'args');
    for (let i = 0; i < args.length; i++) {
      if (i > 0) push(',', 'args');
      walk(args[i], `args[${i}]`, 0);
    }
    push(')', 'args');
  } catch (error) {
    if (error instanceof UnkeyableArgument) throw error;
    // A getter or a Proxy trap that throws, a stack overflow: the arguments cannot be read whole.
    throw new UnkeyableArgument('args', `cannot be read (${error instanceof Error ? error.message : 'a throw'})`);
  }
  return out.join('');
}

/** A stable hash of the canonical form of a call's arguments (SHA-256, base64url). Throws `UnkeyableArgument`. */
export function hashArguments(args: readonly unknown[]): string {
  return createHash('sha256').update(canonicalArguments(args)).digest('base64url');
}
