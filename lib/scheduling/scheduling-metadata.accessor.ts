import type { JobMetadata } from './interfaces/job-metadata.interface.js';
import { JOB_METADATA } from './scheduling.constants.js';

/** The only place that reads the decorators' metadata. */
export function getJobMetadata(method: unknown): JobMetadata | undefined {
  return typeof method === 'function'
    ? (Reflect.getOwnMetadata(JOB_METADATA, method) as JobMetadata | undefined)
    : undefined;
}
