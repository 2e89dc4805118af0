import { LockTimeoutError } from '../errors/lock-timeout.error.js';

/**
 * Races one lock call against its own deadline. A late answer is ignored (its rejection is handled by the race), so
 * a hung store can never hold a tick or `app.close()` up.
 */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, operation: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new LockTimeoutError(operation, timeoutMs)), timeoutMs);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}
