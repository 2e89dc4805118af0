/** Message factories of the fan-out pattern, kept together so they read alike. */

export const invalidOptionMessage = (method: string, option: string, expected: string, got: unknown): string =>
  `FanOut.${method}(): invalid option "${option}": expected ${expected}, got ${describe(got)}.`;

export const SIBLING_FAILED = 'another item of the fan-out failed';
export const CONSUMER_STOPPED = 'the stream consumer stopped early';
export const SOURCE_FAILED = 'the input sequence threw';
export const GROUP_FAILED = 'another task of the group failed';
export const SHUTDOWN = 'application shutdown';

export function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || value == null) return String(value);
  if (typeof value === 'bigint') return `${value}n`;
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'function' ? 'a function' : `a ${typeof value}`;
}
