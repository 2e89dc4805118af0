/** A lock store call that did not answer in time; the tick is skipped. */
export class LockTimeoutError extends Error {
  constructor(
    readonly operation: string,
    readonly timeoutMs: number,
  ) {
    super(`Lock ${operation} did not answer within ${timeoutMs} ms. Check the lock store, or raise the lock timeout.`);
    this.name = 'LockTimeoutError';
  }
}
