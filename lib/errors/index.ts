export * from './concurrency-options.error.js';
export * from './max-children.error.js';
export * from './supervisor-shutdown.error.js';
export * from './task-aborted.error.js';
export * from './task-timeout.error.js';
