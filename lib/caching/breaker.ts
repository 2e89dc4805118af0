/** A store call that did not answer within its timeout. Internal. */
export class StoreTimeoutError extends Error {}

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
