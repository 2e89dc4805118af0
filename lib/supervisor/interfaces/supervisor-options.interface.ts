/** Options of one named supervisor (`forRoot({ supervisors: { emails: { ... } } })`). */
export interface SupervisorOptions {
  /** Children running at once; `startChild()` beyond it throws `MaxChildrenError`. Default: unlimited. */
  maxChildren?: number;
  /** Restart intensity: more than `maxRestarts` restarts within `maxSeconds` stops restarting. Default 3. */
  maxRestarts?: number;
  /** Restart intensity window, in seconds. Default 5. */
  maxSeconds?: number;
  /** How long shutdown waits for running children before aborting them, in ms. Default: the module's `shutdownTimeout`. */
  shutdownTimeout?: number;
}
