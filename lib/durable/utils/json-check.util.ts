/**
 * @internal The first value under `root` that JSON would drop, change or refuse, as `{ path, what }`; undefined when
 * `JSON.stringify` carries it as it is. `path` is written from `label`: `payload.users[2].id`.
 *
 * Refused: functions, symbols, bigints (JSON.stringify throws), cycles (throws), NaN and ±Infinity (become null),
 * Map, Set and other keyed collections (become `{}`), a root `undefined`. Objects with `toJSON` (Date, ...) are
 * carried as their JSON form, as JSON does; an `undefined` property is left out, as JSON does.
 */
export function findNonJson(root: unknown, label: string): { path: string; what: string } | undefined {
  if (root === undefined) return { path: label, what: 'undefined' };
  const stack: object[] = [];
  const visit = (value: unknown, path: string): { path: string; what: string } | undefined => {
    switch (typeof value) {
      case 'string':
      case 'boolean':
      case 'undefined':
        return undefined;
      case 'number':
        return Number.isFinite(value) ? undefined : { path, what: String(value) };
      case 'bigint':
        return { path, what: 'a BigInt' };
      case 'symbol':
        return { path, what: 'a Symbol' };
      case 'function':
        return { path, what: 'a function' };
    }
    if (value === null) return undefined;
    const object = value as object;
    if (stack.includes(object)) return { path, what: 'a circular reference' };
    if (typeof (object as { toJSON?: unknown }).toJSON === 'function') return undefined;
    if (object instanceof Map || object instanceof Set || object instanceof WeakMap || object instanceof WeakSet) {
      return { path, what: `a ${object.constructor.name}` };
    }
    if (object instanceof Promise) return { path, what: 'a Promise' };
    stack.push(object);
    try {
      if (Array.isArray(object)) {
        for (let i = 0; i < object.length; i++) {
          const found = visit(object[i], `${path}[${i}]`);
          if (found) return found;
        }
        return undefined;
      }
      for (const key of Object.keys(object)) {
        const found = visit((object as Record<string, unknown>)[key], `${path}${keyPath(key)}`);
        if (found) return found;
      }
      return undefined;
    } finally {
      stack.pop();
    }
  };
  try {
    return visit(root, label);
  } catch {
    // a throwing getter or Proxy trap: JSON.stringify would throw too
    return { path: label, what: 'an object that throws when read' };
  }
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;
const keyPath = (key: string) => (IDENTIFIER.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`);
