export type {
  DurableChildInfo,
  DurableChildOptions,
  DurableChildRef,
  DurableModuleOptions,
  DurableRetention,
  DurableTaskContext,
  TaskHandlerOptions,
} from './interfaces/durable-options.interface.js';
export type { DurableBatchOptions, DurableBatchProgress, DurableOutcome } from './batch/batch.interfaces.js';
export { DurableBatch } from './batch/durable-batch.js';
export { TaskHandler } from './decorators/task-handler.decorator.js';
export { DurableSupervisor } from './durable-supervisor.js';
export { DurableTask } from './durable-task.js';
export {
  DurableTaskError,
  DurableUnavailableError,
  InvalidPayloadError,
  InvalidTaskHandlerError,
  UnknownTaskError,
} from './errors/durable.errors.js';
