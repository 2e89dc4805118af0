import { SetMetadata } from '@nestjs/common';
import type { CronJobParams } from 'cron';
import type { CronJobOptions } from '../interfaces/job-options.interface.js';
import type { JobMetadata } from '../interfaces/job-metadata.interface.js';
import { JOB_METADATA } from '../scheduling.constants.js';

/**
 * Runs the method on a cron schedule (5 fields, or 6 with seconds first), supervised: no overlap unless asked, a
 * timeout, errors logged and counted, and with `lock` once per cluster. Takes `@nestjs/schedule`'s `@Cron` options.
 *
 * @publicApi
 */
export function Cron(cronTime: CronJobParams['cronTime'], options: CronJobOptions = {}): MethodDecorator {
  return SetMetadata<string, JobMetadata>(JOB_METADATA, { kind: 'cron', cronTime, options });
}
