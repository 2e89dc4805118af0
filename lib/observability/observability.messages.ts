import { describeValue, errorMessage } from '../utils/describe.js';

export const NO_ANSWER = (ms: number) => `no answer within ${ms} ms`;
export const DURABLE_STALE = (ageMs: number, waitMs: number) =>
  ageMs > 0
    ? `no answer within ${waitMs} ms; these counts are ${ageMs} ms old`
    : `no answer yet (waited ${waitMs} ms); the counts show once Redis answers`;
export const PROBE_FAILED = (error: unknown) => `failed: ${errorMessage(error)}`;
export const JOB_OVERDUE = (job: string, ranMs: number, timeoutMs: number) =>
  `job ${describeValue(job)} has been running for ${ranMs} ms, past its ${timeoutMs} ms timeout`;
export const JOB_LATE = (job: string, lateMs: number, graceMs: number) =>
  `job ${describeValue(job)} should have run ${lateMs} ms ago (grace: ${graceMs} ms, one period plus its timeout): ` +
  'its timer has stopped firing';
export const SHUTTING_DOWN = 'the application is shutting down';
export const DASHBOARD_GUARD_MISSING =
  'Invalid ConcurrencyModule option "dashboard.guard": the dashboard shows every task and job and can terminate and run them, so it needs a guard. Give dashboard: { guard: YourAuthGuard } (a CanActivate class), or guard: false to serve it without one (local development only).';
export const DASHBOARD_IN_FACTORY =
  'Invalid ConcurrencyModule option "dashboard": useFactory / createConcurrencyOptions() returned it, but the dashboard\'s routes are fixed when the module is defined. Give it to forRootAsync() itself: ConcurrencyModule.forRootAsync({ useFactory, dashboard: { guard } }).';
export const READ_ONLY = 'The dashboard is read-only (dashboard.readOnly): actions are refused.';
export const ACTION_HEADER_MISSING = (header: string) =>
  `Dashboard actions need the ${header} header (a cross-site form cannot send it).`;
export const DASHBOARD_CLOSING =
  "The application is shutting down: the dashboard's feed is closed. Reload the page once it is back.";
export const NO_SUCH_CHILD = (supervisor: string, id: string) =>
  `Supervisor ${describeValue(supervisor)} has no running child ${describeValue(id)}: it has ended already, or never existed.`;
export const SUPERVISOR_FULL = (supervisor: string, live: number, max: number, refused: number) =>
  `supervisor ${describeValue(supervisor)} is at capacity: ${live}/${max} children (maxChildren); ${refused} start(s) refused so far`;
export const NO_SUCH_DURABLE_CHILD = (task: string, id: string) =>
  `Durable task ${describeValue(task)} has no unfinished child ${describeValue(id)}: it has ended already, or never existed.`;
