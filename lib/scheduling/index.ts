export * from './interfaces/job-lock.interface.js';
export * from './interfaces/jobs-module-options.interface.js';
