/** A store call that did not answer within its timeout. Internal. */
export class StoreTimeoutError extends Error {}

/** `work`, or a `StoreTimeoutError` with `message()` after `ms`. The timer is always cleared. Internal. */
export async function withTimeout<T>(work: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new StoreTimeoutError(message())), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Skips a failing dependency for `retryAfter` ms after each failure, so an outage costs one timeout per burst, not
 * one per call. Internal.
 */
export class Breaker {
  private downUntil = 0;

  constructor(private readonly retryAfter: number) {}

  /** True while calls should be skipped. */
  get open(): boolean {
    return this.downUntil > Date.now();
  }

  trip(): void {
    this.downUntil = Date.now() + this.retryAfter;
  }
}
