export * from './interfaces/supervisor-options.interface.js';
export * from './interfaces/task.interface.js';
export { Task } from './task.js';
