import { describeValue, safeString } from '../utils/describe.js';

/** Message factories of the testing kit, side by side. */

export const quoted = (name: unknown): string => JSON.stringify(safeString(name));

export const INVALID_TESTING_OPTION = (option: string, expected: string, got: unknown) =>
  `Invalid ConcurrencyTestingModule option "${option}": expected ${expected}, got ${describeValue(got)}.`;

export const UNKNOWN_TESTING_OPTION = (option: string, allowed: readonly string[]) =>
  `Unknown ConcurrencyTestingModule option "${option}". Allowed options: ${allowed.join(', ')}.`;

export const INVALID_ARGUMENT = (method: string, argument: string, expected: string, got: unknown) =>
  `ConcurrencyTester.${method}(): invalid ${argument}: expected ${expected}, got ${describeValue(got)}.`;

export const NOT_IDLE = (timeoutMs: number, busy: string[]) =>
  `ConcurrencyTester.idle(): still running after ${timeoutMs} ms: ${busy.join(', ')}. ` +
  'Await what it waits for (a timer under fake timers needs them advanced), make it honour ctx.signal, or raise ' +
  'the timeout.';

export const ARMED = () =>
  'ConcurrencyTester.advance() drives jobs the testing module left unarmed; with armJobs: true the jobs run on ' +
  "their own timers: advance those (the test runner's fake timers) instead, or drop armJobs.";

export const ADVANCING = () =>
  'ConcurrencyTester.advance() is already running: await the previous call before advancing again.';

export const NO_CONCURRENCY_MODULE = () =>
  'ConcurrencyTester found no ConcurrencyModule in this application. Import ConcurrencyTestingModule.forRoot() ' +
  'in the testing module, or ConcurrencyTestingModule.forApp() beside a module that imports ConcurrencyModule.';
