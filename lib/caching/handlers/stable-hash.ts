import { Buffer } from 'node:buffer';
import { createHash, type Hash } from 'node:crypto';
import { errorMessage } from '../../utils/describe.js';

/** The deepest nesting a keyed value may have (deeper: `UnkeyableValue`, never a stack overflow). */
export const MAX_KEY_DEPTH = 256;

/** Why a value cannot be part of a cache key: `where` names the part (`data.items[2]`), `reason` what it is. Internal. */
export class UnkeyableValue extends Error {
  constructor(
    readonly where: string,
    readonly reason: string,
  ) {
    super(`${where} ${reason}`);
    this.name = 'UnkeyableValue';
  }
}

/** Flushed to the hash in slices, so a huge value never becomes one huge string. */
const SLICE = 64 * 1024;

const TYPED_ARRAY = Object.getPrototypeOf(Uint8Array) as abstract new () => ArrayBufferView;

function className(value: object): string | undefined {
  const proto = Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null;
  if (proto === null || proto === Object.prototype) return undefined;
  const name = proto.constructor?.name;
  return typeof name === 'string' && name !== '' ? name : '?';
}

/**
 * A SHA-256 (base64url, 43 characters) of a canonical form of `value`: equal content gives equal hashes whatever the
 * key order of objects and the insertion order of Maps and Sets; different content, or the same text in another type
 * (`1` and `'1'`, a Date and its ISO string, `{}` and `new Map()`), gives different ones. Objects are read by their own
 * enumerable string keys (never `toJSON`), class instances with their class name. A value that cannot be keyed (a
 * function, a symbol, a Promise, an Observable, a WeakMap, a cycle, nesting deeper than `MAX_KEY_DEPTH`, a getter or
 * Proxy trap that throws) throws `UnkeyableValue` naming where it is. Internal.
 */
export function stableHash(value: unknown, root = 'value'): string {
  try {
    return new Canonical().hash(value, root, 0);
  } catch (error) {
    if (error instanceof UnkeyableValue) throw error;
    // a getter or a Proxy trap that throws
    throw new UnkeyableValue(root, `cannot be read (${errorMessage(error)})`);
  }
}

/** One walk over a value: the ancestors of the part being read (to find cycles) are shared by nested hashes. */
class Canonical {
  private readonly ancestors = new Set<object>();

  /** The hash of `value`'s canonical form, written to a hash of its own. */
  hash(value: unknown, path: string, depth: number): string {
    const hash = createHash('sha256');
    const out = new Writer(hash);
    this.walk(value, path, depth, out);
    out.flush();
    return hash.digest('base64url');
  }

  private walk(v: unknown, path: string, depth: number, out: Writer): void {
    switch (typeof v) {
      case 'string':
        return out.write(`s${JSON.stringify(v)}`);
      case 'number':
        return out.write(Object.is(v, -0) ? 'd-0' : `d${v}`);
      case 'boolean':
        return out.write(v ? 't' : 'f');
      case 'undefined':
        return out.write('u');
      case 'bigint':
        return out.write(`b${v}`);
      case 'object':
        break;
      default:
        throw new UnkeyableValue(path, `is a ${typeof v}`);
    }
    if (v === null) return out.write('n');
    if (depth >= MAX_KEY_DEPTH) throw new UnkeyableValue(path, `is nested deeper than ${MAX_KEY_DEPTH} levels`);
    if (this.ancestors.has(v)) throw new UnkeyableValue(path, 'is a cycle (it contains itself)');
    this.ancestors.add(v);
    try {
      this.object(v, path, depth + 1, out);
    } finally {
      this.ancestors.delete(v);
    }
  }

  private object(v: object, path: string, depth: number, out: Writer): void {
    if (Array.isArray(v)) {
      out.write('[');
      for (let i = 0; i < v.length; i++) {
        if (i > 0) out.write(',');
        this.walk((v as unknown[])[i], `${path}[${i}]`, depth, out);
      }
      return out.write(']');
    }
    if (v instanceof Date) return out.write(`D${v.getTime()}`);
    if (v instanceof TYPED_ARRAY || v instanceof DataView) {
      const view = v as ArrayBufferView;
      const bytes = Buffer.from(view.buffer, view.byteOffset, view.byteLength);
      return out.write(`B${className(v)}:${bytes.toString('base64')};`);
    }
    if (v instanceof ArrayBuffer) return out.write(`A${Buffer.from(v).toString('base64')};`);
    if (v instanceof RegExp) return out.write(`R${JSON.stringify(String(v))}`);
    if (v instanceof Map) {
      // Sorted by the hash of each key: the insertion order does not matter.
      const entries = [...v].map(([k, value], i) => [this.hash(k, `${path} key #${i}`, depth), k, value] as const);
      entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
      out.write('M{');
      for (const [h, k, value] of entries) {
        out.write(`${h}:`);
        this.walk(value, `${path}.get(${typeof k === 'string' ? JSON.stringify(k) : 'key'})`, depth, out);
        out.write(',');
      }
      return out.write('}');
    }
    if (v instanceof Set) {
      const members = [...v].map((m, i) => this.hash(m, `${path} member #${i}`, depth)).sort();
      return out.write(`S[${members.join(',')}]`);
    }
    if (v instanceof Promise || v instanceof WeakMap || v instanceof WeakSet || v instanceof WeakRef) {
      throw new UnkeyableValue(path, `is a ${className(v)} (its content cannot be read)`);
    }
    const record = v as Record<string, unknown>;
    if (typeof record.subscribe === 'function' || typeof record.then === 'function') {
      throw new UnkeyableValue(path, 'is an Observable or a thenable (its content cannot be read)');
    }
    const name = className(v);
    out.write(name === undefined ? 'O{' : `O${JSON.stringify(name)}{`);
    for (const key of Object.keys(v).sort()) {
      out.write(`${JSON.stringify(key)}:`);
      this.walk(record[key], `${path}.${key}`, depth, out);
      out.write(',');
    }
    out.write('}');
  }
}

class Writer {
  private buffer = '';
  constructor(private readonly hash: Hash) {}
  write(text: string): void {
    this.buffer += text;
    if (this.buffer.length >= SLICE) this.flush();
  }
  flush(): void {
    if (this.buffer === '') return;
    this.hash.update(this.buffer);
    this.buffer = '';
  }
}
