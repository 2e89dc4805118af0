import type { CronJobParams } from 'cron';
import type { JobLock } from './job-lock.interface.js';
import type { OverlapPolicy } from './job-options.interface.js';

/** A validated job, ready to mount. Internal. */
export interface JobDefinition {
  name: string;
  /** `ClassName.method()`, for messages. */
  where: string;
  instance: object;
  methodName: string | symbol;
  overlap: OverlapPolicy;
  /** Validated `catchUp` (cron and fixed-rate interval with a lock only). */
  catchUp?: { window: number; mode: 'last' | 'all' };
  /** Validated `pauseAfterFailures`. */
  pauseAfterFailures?: number;
  /** ms, or undefined for none. */
  timeout: number | undefined;
  lock: { store: JobLock; ttl: number; timeout: number } | undefined;
  /** `jobs.overrides[name].disabled`: mounted paused (`resume()` starts it). */
  disabled?: boolean;
  schedule:
    | {
        kind: 'cron';
        cronTime: CronJobParams['cronTime'];
        timeZone?: string;
        utcOffset?: number;
        unrefTimeout?: boolean;
        threshold?: number;
        disabled: boolean;
        initialDelay: number;
      }
    | { kind: 'interval'; ms: number; mode: 'fixed-rate' | 'fixed-delay'; initialDelay: number }
    | { kind: 'timeout'; ms: number };
}
