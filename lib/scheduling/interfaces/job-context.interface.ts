/** What a scheduled method receives as its one argument. */
export interface JobContext {
  /** Aborted on the job's `timeout` and when the application shuts down: pass it on to `fetch`, streams, timers. */
  signal: AbortSignal;
  /** The job's name. */
  name: string;
  /**
   * The tick this run belongs to: the nominal time of the schedule (not the moment the timer fired), the same on
   * every instance of a cluster. For `trigger()`, the time of the call.
   */
  scheduledAt: Date;
  /** 1: a run is not retried; a failed run waits for the next tick. */
  attempt: number;
  /** With `lock`: the lease's fencing token, an increasing number from the lock store. Pass it to your writes. */
  fencingToken?: number;
}
