import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { CONCURRENCY_OPTIONS } from '../../concurrency.constants.js';
import type { ResolvedConcurrencyOptions } from '../../interfaces/concurrency-module-options.interface.js';
import { SupervisorRegistry } from '../../supervisor/supervisor.registry.js';
import type { CacheMessage } from '../interfaces/channel-messages.interface.js';
import { CONCURRENCY_CHANNELS } from '../observability.constants.js';
import { loadOpenTelemetryApi } from '../otel.loader.js';
import { type ConcurrencyTracer, createTracer, type TracingApi } from './concurrency-tracer.js';
import { ATTR } from './tracing.constants.js';

const CACHE_RESULTS = new Set(['hit', 'miss', 'stale', 'coalesced']);

/**
 * @internal Decides once, at boot, whether this application traces: `tracing` not `false`, `@opentelemetry/api`
 * installed, and a tracer provider registered. Hands the tracer (or nothing) to the supervisors, which the other
 * patterns reach through the registry.
 */
@Injectable()
export class ConcurrencyTracing implements OnModuleInit, OnApplicationShutdown {
  tracer: ConcurrencyTracer | undefined;
  #subscribed = false;

  constructor(
    @Inject(CONCURRENCY_OPTIONS) private readonly options: ResolvedConcurrencyOptions,
    private readonly registry: SupervisorRegistry,
  ) {}

  async onModuleInit(): Promise<void> {
    const { enabled, fanOutItems } = this.options.tracing;
    if (!enabled) return;
    const api = (await loadOpenTelemetryApi()) as unknown as TracingApi | undefined;
    this.tracer = createTracer(api, fanOutItems);
    this.registry.setTracer(this.tracer);
    if (this.tracer === undefined) return;
    // The cache publishes each counted lookup synchronously, in the caller's context: the span active there (the
    // request's) gets the result as an attribute. No span per lookup.
    subscribe(CONCURRENCY_CHANNELS.cache, this.onCache);
    this.#subscribed = true;
  }

  onApplicationShutdown(): void {
    if (this.#subscribed) unsubscribe(CONCURRENCY_CHANNELS.cache, this.onCache);
    this.#subscribed = false;
  }

  private readonly onCache = (message: unknown): void => {
    const type = (message as CacheMessage).type;
    if (!CACHE_RESULTS.has(type)) return;
    this.tracer?.api.trace.getActiveSpan()?.setAttribute(ATTR.cacheResult, type);
  };
}
