/** Message factories of the fan-out pattern, kept together so they read alike. */

import { describeValue } from '../utils/describe.js';

export const invalidOptionMessage = (method: string, option: string, expected: string, got: unknown): string =>
  `FanOut.${method}(): invalid option "${option}": expected ${expected}, got ${describeValue(got)}.`;

export const SIBLING_FAILED = 'another item of the fan-out failed';
export const CONSUMER_STOPPED = 'the stream consumer stopped early';
export const SOURCE_FAILED = 'the input sequence threw';
export const GROUP_FAILED = 'another task of the group failed';
export const SHUTDOWN = 'application shutdown';
