/**
 * Internal: text for log lines and error messages built from values that user code handed us (a thrown value, an
 * option). None of these functions throws, whatever it is given: a Proxy whose traps throw, an object without a
 * prototype, a Symbol, an object whose `toString`/`message`/`stack` getter throws. A log line that throws inside a
 * settle path would turn one child's failure into the process's.
 */

/** `value instanceof Error`, false where the check itself throws (a Proxy with a throwing `getPrototypeOf` trap). */
export function isError(value: unknown): value is Error {
  try {
    return value instanceof Error;
  } catch {
    return false;
  }
}

/** The reason of a failure, for a log line: an Error's message, else a string form of the value. */
export function errorMessage(error: unknown): string {
  try {
    if (isError(error)) {
      const message = error.message;
      return typeof message === 'string' ? message : safeString(message);
    }
  } catch {
    // a throwing `message` getter: fall through to the generic form
  }
  return safeString(error);
}

/** An Error's stack for `Logger.error(message, stack)`, or undefined (never throws, never a non-string). */
export function errorStack(error: unknown): string | undefined {
  try {
    if (!isError(error)) return undefined;
    const stack = error.stack;
    return typeof stack === 'string' ? stack : undefined;
  } catch {
    return undefined;
  }
}

/** `String(value)`, or a description of its type where that throws (Symbol-free objects, throwing `toString`). */
export function safeString(value: unknown): string {
  try {
    if (typeof value === 'symbol') return value.toString();
    const text = String(value);
    return typeof text === 'string' ? text : typeOf(value);
  } catch {
    return typeOf(value);
  }
}

/**
 * A value in an "expected X, got Y" message: strings quoted, primitives as they are, anything else by its kind
 * only (an option value may hold a secret, and its string form is rarely useful).
 */
export function describeValue(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'symbol') return safeString(value);
  return typeOf(value);
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'function') return 'a function';
  if (typeof value !== 'object') return `a ${typeof value}`;
  try {
    if (Array.isArray(value)) return 'an array';
  } catch {
    // a revoked Proxy
  }
  return 'an object';
}
