/** Prefix of the injection token of a named supervisor (`getSupervisorToken(name)`). */
export const SUPERVISOR_TOKEN_PREFIX = 'TaskSupervisor:';

/** Child states (numbers: the child record is on the hot path). */
export const QUEUED = 0;
export const RUNNING = 1;
/** Aborted by `terminateChild()`/shutdown, not yet settled. */
export const STOPPING = 2;
export const DONE = 3;

/** Restart policies. */
export const TEMPORARY = 0;
export const TRANSIENT = 1;
export const PERMANENT = 2;

/** Children started per microtask: started children settle (and are freed) between chunks. */
export const START_CHUNK = 1024;
