/** Prefix of the injection token of a named supervisor (`getSupervisorToken(name)`). */
export const SUPERVISOR_TOKEN_PREFIX = 'TaskSupervisor:';

/** Child states (numbers: the child record is on the hot path). */
export const QUEUED = 0;
export const RUNNING = 1;
export const DONE = 2;

/** Restart policies. */
export const TEMPORARY = 0;
export const TRANSIENT = 1;
export const PERMANENT = 2;
