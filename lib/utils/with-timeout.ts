/** A timer that fires this much after its time had the event loop blocked (or the process stopped) meanwhile. */
const FIRED_LATE_MS = 50;

/**
 * `work`, or a rejection with `onTimeout()` after `ms`. A late answer is ignored (its rejection is handled here), and
 * the timer is always cleared, so a hung store or lock never holds a request, a tick or `app.close()` up.
 *
 * An answer that reached the process by the time the timer fired counts: the timer may fire late, after the event
 * loop was blocked (a long GC, a CPU-bound request, SIGSTOP), in the same turn as the answer's I/O, and timers run
 * first. A timer that fired late therefore waits one turn of the loop (`setImmediate`), in which that I/O is read;
 * `accept(value)` decides whether such a late-read answer still counts (else the call times out). A timer on time
 * rejects at once (fake timers see no difference). Internal: shared by the job locks and the cache stores.
 */
export function withTimeout<T>(
  work: PromiseLike<T>,
  ms: number,
  onTimeout: () => Error,
  accept: (value: T) => boolean = () => true,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let fired = false;
    const start = Date.now();
    const expire = () => {
      if (!done) reject(onTimeout());
      done = true;
    };
    const timer = setTimeout(() => {
      fired = true;
      if (Date.now() - start - ms < FIRED_LATE_MS) expire();
      else setImmediate(expire);
    }, ms);
    work.then(
      (value) => {
        if (!done) {
          if (!fired || accept(value)) resolve(value);
          else reject(onTimeout());
        }
        done = true;
        clearTimeout(timer);
      },
      (error: unknown) => {
        if (!done) reject(error);
        done = true;
        clearTimeout(timer);
      },
    );
  });
}
