const describeChild = (id: string, name: string | undefined) => (name ? `"${name}" (${id})` : `"${id}"`);

import { describeValue, errorMessage } from '../utils/describe.js';

const reasonOf = errorMessage;

export const CHILD_FAILED = (
  supervisor: string,
  id: string,
  name: string | undefined,
  attempt: number,
  error: unknown,
) => `Child ${describeChild(id, name)} of supervisor "${supervisor}" failed on attempt ${attempt}: ${reasonOf(error)}`;

export const CHILD_TIMED_OUT = (
  supervisor: string,
  id: string,
  name: string | undefined,
  attempt: number,
  ms: number,
) =>
  `Child ${describeChild(id, name)} of supervisor "${supervisor}" timed out after ${ms} ms on attempt ${attempt}; ` +
  'its signal was aborted.';

export const MAX_RESTARTS = (
  supervisor: string,
  id: string,
  name: string | undefined,
  maxRestarts: number,
  maxSeconds: number,
) =>
  `Child ${describeChild(id, name)} of supervisor "${supervisor}" restarted more than ${maxRestarts} times within ` +
  `${maxSeconds} s (maxRestarts/maxSeconds): it is not restarted again. Fix the failure or raise maxRestarts.`;

export const ABANDONED = (supervisor: string, ids: string[], timeoutMs: number) =>
  `Supervisor "${supervisor}" aborted ${ids.length} child(ren) at shutdown, but they did not stop within ` +
  `${timeoutMs} ms and were abandoned: ${ids.slice(0, 20).join(', ')}${ids.length > 20 ? ', ...' : ''}. ` +
  'Make the work honour ctx.signal.';

export const INVALID_CHILD_OPTION = (option: string, expected: string, got: unknown) =>
  `Invalid child option "${option}": expected ${expected}, got ${describeValue(got)}.`;
