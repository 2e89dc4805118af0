/**
 * `work`, or a rejection with `onTimeout()` after `ms`. A late answer is ignored (its rejection is handled by the
 * race), and the timer is always cleared, so a hung store or lock never holds a request, a tick or `app.close()` up.
 * Internal: shared by the job locks and the cache stores.
 */
export async function withTimeout<T>(work: PromiseLike<T>, ms: number, onTimeout: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(onTimeout()), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
