import { Logger } from '@nestjs/common';

/**
 * Optional trace export: with OTEL_EXPORTER_OTLP_ENDPOINT set (e.g. http://localhost:4318 for a local Jaeger or an
 * OpenTelemetry Collector), registers an OpenTelemetry SDK that sends spans over OTLP/HTTP, before the app boots (the
 * module checks for a tracer provider once, at boot). Without it nothing is loaded and nothing is registered. The SDK
 * packages are loaded dynamically: the app starts without them.
 */
export async function startTracing(): Promise<(() => Promise<void>) | undefined> {
  if (!process.env.OTEL_EXPORTER_OTLP_ENDPOINT) return undefined;
  try {
    const { context, trace } = await import('@opentelemetry/api');
    const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
    const { BasicTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-base');
    const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-http');
    // The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and OTEL_EXPORTER_OTLP_HEADERS) itself: spans go to <endpoint>/v1/traces.
    const provider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())] });
    context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
    trace.setGlobalTracerProvider(provider);
    Logger.log(`Exporting traces to ${process.env.OTEL_EXPORTER_OTLP_ENDPOINT}`, 'Tracing');
    return () => provider.shutdown();
  } catch (error) {
    Logger.warn(
      `OTEL_EXPORTER_OTLP_ENDPOINT is set but the OpenTelemetry SDK could not be loaded: ${String(error)}`,
      'Tracing',
    );
    return undefined;
  }
}
