import { Injectable } from '@nestjs/common';

/** @internal One `@TaskHandler` method, validated, defaults filled in. */
export interface TaskHandlerDefinition {
  name: string;
  /** `Class.method()`, for messages. */
  where: string;
  instance: object;
  methodName: string;
  concurrency: number;
  restart: 'temporary' | 'transient';
  maxRestarts: number;
  backoff: number;
  timeout: number | undefined;
}

/** @internal The handlers found at boot, by task name. */
@Injectable()
export class DurableHandlers {
  readonly byName = new Map<string, TaskHandlerDefinition>();
}
