import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, MetadataScanner } from '@nestjs/core';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import { MAX_TIMEOUT_MS } from '../supervisor/utils/timeout.util.js';
import type { TaskHandlerMetadata } from './decorators/task-handler.decorator.js';
import { DurableHandlers, type TaskHandlerDefinition } from './durable-handlers.js';
import { DEFAULT_DURABLE_BACKOFF, DEFAULT_DURABLE_MAX_RESTARTS, TASK_HANDLER_METADATA } from './durable.constants.js';
import {
  DUPLICATE_HANDLER,
  HANDLER_WITHOUT_DURABLE,
  INVALID_HANDLER_OPTION,
  INVALID_TASK_NAME,
  REQUEST_SCOPED_HANDLER,
  where as at,
} from './durable.messages.js';
import { InvalidTaskHandlerError } from './errors/durable.errors.js';
import { discoverMethods } from '../utils/discover-methods.js';

const OPTIONS = ['concurrency', 'restart', 'maxRestarts', 'backoff', 'timeout'];

const safeName = (name: unknown) => (typeof name === 'string' ? name : String(name as never));

const getMetadata = (method: unknown): TaskHandlerMetadata | undefined =>
  typeof method === 'function'
    ? (Reflect.getOwnMetadata(TASK_HANDLER_METADATA, method) as TaskHandlerMetadata | undefined)
    : undefined;

/**
 * @internal Finds the `@TaskHandler` methods of every provider and controller at boot and validates them: a
 * duplicate name, a request-scoped provider or an invalid option fails `app.init()` naming the method(s).
 */
@Injectable()
export class DurableExplorer implements OnModuleInit {
  constructor(
    private readonly discovery: DiscoveryService,
    private readonly scanner: MetadataScanner,
    private readonly handlers: DurableHandlers,
    @Inject(CONCURRENCY_OPTIONS) private readonly options: ResolvedConcurrencyOptions,
  ) {}

  onModuleInit(): void {
    const durable = this.options.durable;
    for (const { metadata: meta, instance, className, methodName, staticTree } of discoverMethods(
      this.discovery,
      this.scanner,
      getMetadata,
    )) {
      const w = at(className, methodName);
      if (!durable) {
        // Without `durable` nothing would ever run it: a silent no-op is worse than a failed boot. `durable: false`
        // switches durable tasks off on purpose (no Redis in development): said once per handler, the boot goes on.
        const message = HANDLER_WITHOUT_DURABLE(safeName(meta.name), w, this.options.durableOff);
        if (!this.options.durableOff) throw new InvalidTaskHandlerError(message);
        new Logger('DurableSupervisor').warn(message);
        continue;
      }
      if (typeof meta.name !== 'string' || meta.name === '' || meta.name.includes(':')) {
        throw new InvalidTaskHandlerError(INVALID_TASK_NAME(w, meta.name));
      }
      if (!staticTree) throw new InvalidTaskHandlerError(REQUEST_SCOPED_HANDLER(meta.name, w, className));
      const first = this.handlers.byName.get(meta.name);
      if (first) throw new InvalidTaskHandlerError(DUPLICATE_HANDLER(meta.name, first.where, w));
      this.handlers.byName.set(meta.name, this.define(meta.name, meta, w, instance as object, methodName));
    }
  }

  private define(
    name: string,
    meta: TaskHandlerMetadata,
    w: string,
    instance: object,
    methodName: string,
  ): TaskHandlerDefinition {
    const o = (meta.options ?? {}) as Record<string, unknown>;
    const fail = (option: string, expected: string, got: unknown): never => {
      throw new InvalidTaskHandlerError(INVALID_HANDLER_OPTION(w, option, expected, got));
    };
    if (typeof o !== 'object' || o === null) fail('options', 'an object', o);
    for (const key of Object.keys(o)) {
      if (!OPTIONS.includes(key)) fail(key, `one of ${OPTIONS.join(', ')}`, key);
    }
    const int = (key: string, min: number, max: number, fallback: number): number => {
      const v = o[key];
      if (v === undefined) return fallback;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
        fail(key, `an integer >= ${min} and <= ${max}`, v);
      }
      return v as number;
    };
    if (o.restart !== undefined && o.restart !== 'temporary' && o.restart !== 'transient') {
      fail('restart', `'temporary' or 'transient'`, o.restart);
    }
    return {
      name,
      where: w,
      instance,
      methodName,
      concurrency: int('concurrency', 1, 10_000, this.options.durable!.concurrency),
      restart: (o.restart as 'temporary' | 'transient' | undefined) ?? 'transient',
      maxRestarts: int('maxRestarts', 0, 100, DEFAULT_DURABLE_MAX_RESTARTS),
      backoff: int('backoff', 0, MAX_TIMEOUT_MS, DEFAULT_DURABLE_BACKOFF),
      timeout: o.timeout === undefined ? undefined : int('timeout', 1, MAX_TIMEOUT_MS, 0),
    };
  }
}
