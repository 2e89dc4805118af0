export * from './interfaces/child.interface.js';
export * from './interfaces/supervisor-options.interface.js';
export * from './interfaces/task.interface.js';
export { Task } from './task.js';
export { TaskSupervisor } from './task-supervisor.js';
export { InjectSupervisor } from './decorators/inject-supervisor.decorator.js';
export { getSupervisorToken } from './utils/get-supervisor-token.util.js';
