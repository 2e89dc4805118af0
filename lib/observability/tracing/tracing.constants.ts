/** The instrumentation scope of the OpenTelemetry tracer: the package's name and version. */
export const TRACER_NAME = 'nestjs-concurrency';
/** Kept equal to package.json's version (a spec checks it). */
export const TRACER_VERSION = '0.1.0';

/** Span attributes (OpenTelemetry naming: a `concurrency.` namespace, dot-separated). */
export const ATTR = {
  supervisor: 'concurrency.supervisor',
  taskId: 'concurrency.task.id',
  taskAttempt: 'concurrency.task.attempt',
  outcome: 'concurrency.outcome',
  jobName: 'concurrency.job.name',
  jobKind: 'concurrency.job.kind',
  jobScheduledAt: 'concurrency.job.scheduled_at',
  jobFencingToken: 'concurrency.job.fencing_token',
  fanOutItems: 'concurrency.fan_out.items',
  fanOutConcurrency: 'concurrency.fan_out.concurrency',
  fanOutIndex: 'concurrency.fan_out.index',
  cacheResult: 'concurrency.cache.result',
} as const;
