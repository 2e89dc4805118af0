/**
 * @internal `work`'s outcome, or a rejection with `signal.reason` as soon as `signal` aborts, whichever comes first.
 * A handler that ignores its signal cannot hold its attempt (nor a shutdown) past a timeout or a termination; its
 * late outcome is ignored (handled, so never an unhandled rejection).
 */
export function untilAborted<T>(work: PromiseLike<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    try {
      work.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    } catch (error) {
      // a thenable whose then() throws
      signal.removeEventListener('abort', onAbort);
      reject(error);
    }
  });
}
