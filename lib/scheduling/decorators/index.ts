export * from './cron.decorator.js';
export * from './interval.decorator.js';
export * from './timeout.decorator.js';
