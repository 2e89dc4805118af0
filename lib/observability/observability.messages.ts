import { describeValue, errorMessage } from '../utils/describe.js';

export const NO_ANSWER = (ms: number) => `no answer within ${ms} ms`;
export const PROBE_FAILED = (error: unknown) => `failed: ${errorMessage(error)}`;
export const JOB_OVERDUE = (job: string, ranMs: number, timeoutMs: number) =>
  `job ${describeValue(job)} has been running for ${ranMs} ms, past its ${timeoutMs} ms timeout`;
export const SHUTTING_DOWN = 'the application is shutting down';
