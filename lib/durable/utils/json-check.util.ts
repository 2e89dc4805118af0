import { errorMessage } from '../../utils/describe.js';

/** Why a value cannot travel as JSON as it is: where (`payload.users[2].id`) and what it is. */
export interface NonJson {
  path: string;
  what: string;
}

/** Stops `JSON.stringify` at the first value it would change or refuse (see `toJson`). */
class Refused {
  constructor(readonly found: NonJson) {}
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const keyPath = (key: string) => (IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`);

/**
 * @internal `root` as the JSON text that will be stored, or the first value under it that JSON would drop, change or
 * refuse, as `{ path, what }` (`path` is written from `label`). The check runs inside the real `JSON.stringify` (as
 * its replacer), so it sees what JSON sees: each `toJSON()` result, getters' values; the text it returns is the one
 * checked.
 *
 * Refused: functions, symbols, bigints, cycles, NaN and ±Infinity (become null), Map, Set, WeakMap, WeakSet, Promise
 * (become `{}`), Error and RegExp (become `{}`), typed arrays, DataView and ArrayBuffer (become objects of indexes or
 * `{}`), `undefined` or a hole in an array (becomes null), an object with Symbol keys (dropped), a root `undefined`,
 * a `toJSON()` or getter that throws. Carried as JSON carries them: a `toJSON()` result (a Date becomes its ISO
 * string), an `undefined` property (left out).
 */
export function toJson(root: unknown, label: string): { json: string } | NonJson {
  if (root === undefined) return { path: label, what: 'undefined' };
  const paths = new Map<object, string>();
  const parents = new Map<object, object>();
  let wrapper: object | undefined;
  const check = (holder: object, key: string, value: unknown): unknown => {
    wrapper ??= holder;
    const parent = paths.get(holder) ?? label;
    const path = holder === wrapper ? label : `${parent}${Array.isArray(holder) ? `[${key}]` : keyPath(key)}`;
    const what = describeNonJson(value, Array.isArray(holder));
    if (what) throw new Refused({ path, what });
    if (typeof value === 'object' && value !== null) {
      for (let at: object | undefined = holder; at !== undefined; at = parents.get(at)) {
        if (at === value) throw new Refused({ path, what: 'a circular reference' });
      }
      parents.set(value, holder);
      paths.set(value, path);
    }
    return value;
  };
  function replacer(this: object, key: string, value: unknown): unknown {
    return check(this, key, value);
  }
  try {
    return { json: JSON.stringify(root, replacer) };
  } catch (error) {
    if (error instanceof Refused) return error.found;
    // A toJSON() or a getter threw before the replacer saw its value: find where, reading as JSON does.
    return locateThrow(root, label) ?? { path: label, what: `a value JSON.stringify refuses (${errorMessage(error)})` };
  }
}

/** What JSON would do wrong with `value` on its own (its children are checked on their own turn), or undefined. */
function describeNonJson(value: unknown, inArray: boolean): string | undefined {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return undefined;
    case 'undefined':
      return inArray ? 'undefined (JSON turns it into null in an array)' : undefined;
    case 'number':
      return Number.isFinite(value) ? undefined : String(value);
    case 'bigint':
      return 'a BigInt';
    case 'symbol':
      return 'a Symbol';
    case 'function':
      return 'a function';
  }
  if (value === null) return undefined;
  const object = value as object;
  if (object instanceof Map || object instanceof Set || object instanceof WeakMap || object instanceof WeakSet) {
    return `a ${object.constructor.name}`;
  }
  if (object instanceof Promise) return 'a Promise';
  if (object instanceof Error) return 'an Error (JSON keeps neither its message nor its stack: send its message)';
  if (object instanceof RegExp) return 'a RegExp';
  if (ArrayBuffer.isView(object)) return `a ${object.constructor.name} (JSON turns it into an object)`;
  if (object instanceof ArrayBuffer || object instanceof SharedArrayBuffer) return `an ${object.constructor.name}`;
  if (Object.getOwnPropertySymbols(object).some((s) => Object.prototype.propertyIsEnumerable.call(object, s))) {
    return 'an object with Symbol keys (JSON drops them)';
  }
  return undefined;
}

/** The path of the `toJSON()` or getter that throws under `root`, read in JSON's order; undefined if none throws. */
function locateThrow(root: unknown, label: string): NonJson | undefined {
  const seen = new Set<object>();
  const visit = (holder: unknown, key: string, path: string): NonJson | undefined => {
    let value: unknown;
    try {
      value = key === '' ? holder : (holder as Record<string, unknown>)[key];
    } catch (error) {
      return { path, what: `a property whose getter throws (${errorMessage(error)})` };
    }
    const toJSON = (value as { toJSON?: unknown } | null | undefined)?.toJSON;
    if (typeof toJSON === 'function') {
      try {
        value = toJSON.call(value, key);
      } catch (error) {
        return { path, what: `a value whose toJSON() throws (${errorMessage(error)})` };
      }
    }
    if (typeof value !== 'object' || value === null || seen.has(value)) return undefined;
    seen.add(value);
    const keys = Array.isArray(value) ? value.map((_, i) => String(i)) : Object.keys(value);
    for (const k of keys) {
      const found = visit(value, k, Array.isArray(value) ? `${path}[${k}]` : `${path}${keyPath(k)}`);
      if (found) return found;
    }
    return undefined;
  };
  try {
    return visit(root, '', label);
  } catch {
    return undefined; // a Proxy whose traps throw: the caller names the root
  }
}
