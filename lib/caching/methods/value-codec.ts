import { Buffer } from 'node:buffer';
import { createPlugin, fromJSON, type SerovalJSON, SerovalUnsupportedTypeError, toJSON } from 'seroval';
import { VALUE_NOT_CARRIED } from '../caching.messages.js';
import { errorMessage } from '../../utils/describe.js';

/**
 * Node's Buffer: seroval keeps it as a Uint8Array (and writes the whole pooled ArrayBuffer behind a small Buffer):
 * this keeps the bytes of the view only, and gives a Buffer back.
 */
const BufferPlugin = createPlugin<Buffer, { b: ReturnType<typeof toJSON>['t'] }>({
  tag: 'nestjs-concurrency/Buffer',
  skipPlainObjects: true,
  test: (value) => Buffer.isBuffer(value),
  parse: { sync: (value, ctx) => ({ b: ctx.parse(value.toString('base64')) }) },
  serialize: (node, ctx) => `Buffer.from(${ctx.serialize(node.b)},"base64")`,
  deserialize: (node, ctx) => Buffer.from(ctx.deserialize(node.b) as string, 'base64'),
});

const options = { plugins: [BufferPlugin] };

function kindOf(value: unknown): string {
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'symbol') return 'a symbol';
  if (typeof value !== 'object' || value === null) return `a ${typeof value}`;
  try {
    const name = (Object.getPrototypeOf(value) as { constructor?: { name?: unknown } } | null)?.constructor?.name;
    return typeof name === 'string' && name !== '' ? `an instance of ${name}` : 'an object of a class';
  } catch {
    return 'an object that cannot be inspected';
  }
}

/**
 * A method's result as plain JSON data that keeps its types (seroval's JSON form): Date, Map, Set, bigint, Buffer,
 * typed arrays, RegExp, URL, Error, undefined (also nested), NaN, Infinity, -0, shared references and cycles.
 * Throws an Error whose message says what cannot be carried (a function, a class instance, a Promise, a symbol).
 * Internal.
 */
export function encodeValue(value: unknown): SerovalJSON {
  try {
    return toJSON(value, options);
  } catch (error) {
    // The development build wraps the unsupported-type error in a parser error (as its cause).
    let cause: unknown = error;
    for (let i = 0; i < 4 && cause instanceof Error && !(cause instanceof SerovalUnsupportedTypeError); i++) {
      cause = cause.cause;
    }
    const reason =
      cause instanceof SerovalUnsupportedTypeError ? `it holds ${kindOf(cause.value)}` : errorMessage(error);
    throw new Error(VALUE_NOT_CARRIED(reason));
  }
}

/** The value `encodeValue` was given. Throws on data it did not write. Internal. */
export function decodeValue(data: unknown): unknown {
  return fromJSON(data as SerovalJSON, options);
}
