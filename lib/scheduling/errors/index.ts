export * from './invalid-job.error.js';
export * from './job-running.error.js';
export * from './lock-timeout.error.js';
export * from './unknown-job.error.js';
