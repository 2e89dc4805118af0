import { Inject, Injectable, type OnModuleInit } from '@nestjs/common';
import { CONCURRENCY_OPTIONS } from '../../concurrency.constants.js';
import type { ResolvedConcurrencyOptions } from '../../interfaces/concurrency-module-options.interface.js';
import { SupervisorRegistry } from '../../supervisor/supervisor.registry.js';
import { loadOpenTelemetryApi } from '../otel.loader.js';
import { type ConcurrencyTracer, createTracer, type TracingApi } from './concurrency-tracer.js';

/**
 * @internal Decides once, at boot, whether this application traces: `tracing` not `false`, `@opentelemetry/api`
 * installed, and a tracer provider registered. Hands the tracer (or nothing) to the supervisors, which the other
 * patterns reach through the registry.
 */
@Injectable()
export class ConcurrencyTracing implements OnModuleInit {
  tracer: ConcurrencyTracer | undefined;

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
  }
}
