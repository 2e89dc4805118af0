import { safeString } from '../../utils/describe.js';

/** setTimeout's limit (2^31 - 1 ms, ~24.8 days): Node fires a longer delay after 1 ms instead. */
export const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/**
 * @internal The one check for every timeout of the package (child `timeout`, `shutdownTimeout`, `Task.await/yield/
 * shutdown`, `awaitMany/yieldMany`, `TaskSupervisor.shutdown`): a number of ms that setTimeout can wait, or `Infinity`
 * for no deadline. `positive`: 0 is not allowed either.
 */
export function isTimeoutMs(value: unknown, positive = false): value is number {
  return (
    typeof value === 'number' && (positive ? value > 0 : value >= 0) && (value <= MAX_TIMEOUT_MS || value === Infinity)
  );
}

/** @internal What `isTimeoutMs` accepts, for error messages. */
export const timeoutMsExpected = (positive = false): string =>
  `a number of ms ${positive ? '> 0' : '>= 0'} and <= ${MAX_TIMEOUT_MS} (or Infinity)`;

/** @internal Throws a `RangeError` (a `TypeError` for a non-number) naming the argument unless `isTimeoutMs(value)`. */
export function checkTimeoutMs(where: string, value: unknown): void {
  if (isTimeoutMs(value)) return;
  const message = `${where}: invalid timeout: expected ${timeoutMsExpected()}, got ${safeString(value)}.`;
  throw typeof value === 'number' && !Number.isNaN(value) ? new RangeError(message) : new TypeError(message);
}
