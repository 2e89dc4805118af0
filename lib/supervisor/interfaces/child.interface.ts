/** What `startChild()` returns at once: a handle on the child, e.g. for `terminateChild(ref.id)`. */
export interface ChildRef {
  /** Unique within the supervisor (`<supervisor>-<n>`); kept across restarts. */
  readonly id: string;
}

/** Options of one child (`startChild(fn, opts)`, `async(fn, opts)`). */
export interface ChildOptions {
  /** Shown in logs, events and `children()`. */
  name?: string;
  /**
   * OTP restart policy: `'temporary'` (default) never restarts; `'transient'` restarts after a failure (throw,
   * rejection, timeout); `'permanent'` restarts after any exit. Restarts are bounded by the supervisor's
   * `maxRestarts` within `maxSeconds`. `async()` children are always temporary.
   */
  restart?: 'temporary' | 'transient' | 'permanent';
  /** ms per attempt; then `ctx.signal` is aborted with a `TaskTimeoutError` and the attempt counts as failed. */
  timeout?: number;
}

/** One live child, as listed by `children()`. */
export interface ChildInfo {
  id: string;
  name: string | undefined;
  /** `'starting'`: accepted, runs on the next tick; `'terminating'`: aborted, not yet stopped. */
  status: 'starting' | 'running' | 'terminating';
  /** When the current attempt started running (undefined while `'starting'`). */
  startedAt: Date | undefined;
  /** Restarts so far (the current attempt is `restarts + 1`). */
  restarts: number;
}

/** What `TaskSupervisor.events` emits. */
export interface SupervisorEvent {
  type: 'started' | 'completed' | 'failed' | 'restarted' | 'terminated' | 'timeout' | 'max-restarts';
  supervisor: string;
  childId: string;
  name?: string;
  /** The attempt the event is about (for `'restarted'`: the new attempt). */
  attempt: number;
  /** How long the attempt ran: on `completed`, `failed`, `timeout` and `terminated`. */
  durationMs?: number;
  /** The failure: on `failed`, `timeout` and `max-restarts` (the child's last error, if it failed at all). */
  error?: unknown;
}
