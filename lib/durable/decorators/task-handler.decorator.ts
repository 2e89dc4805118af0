import { SetMetadata } from '@nestjs/common';
import { TASK_HANDLER_METADATA } from '../durable.constants.js';
import type { TaskHandlerOptions } from '../interfaces/durable-options.interface.js';

/** @internal What `@TaskHandler` stores on the method. */
export interface TaskHandlerMetadata {
  name: unknown;
  options: TaskHandlerOptions | undefined;
}

/**
 * Makes a provider method the handler of the durable task `name`: `method(payload, ctx: DurableTaskContext)`. Found
 * at boot; it runs on whichever instance (with `durable.workers`) takes the task from Redis.
 *
 * @publicApi
 */
export function TaskHandler(name: string, options?: TaskHandlerOptions): MethodDecorator {
  return SetMetadata<string, TaskHandlerMetadata>(TASK_HANDLER_METADATA, { name, options });
}
