import { Inject, Injectable, type OnModuleDestroy, Optional } from '@nestjs/common';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import { DurableSupervisor } from '../durable/durable-supervisor.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import { JobRegistry } from '../scheduling/job.registry.js';
import { DEFAULT_LOCK_TIMEOUT } from '../scheduling/scheduling.constants.js';
import { SupervisorRegistry } from '../supervisor/supervisor.registry.js';
import { withTimeout } from '../utils/with-timeout.js';
import type { ConcurrencyHealthDetails, ConcurrencyHealthResult, HealthPart } from './interfaces/health.interface.js';
import {
  JOB_LATE,
  JOB_OVERDUE,
  NO_ANSWER,
  PROBE_FAILED,
  SHUTTING_DOWN,
  SUPERVISOR_FULL,
} from './observability.messages.js';
import { maxChildren } from './supervisor-capacity.js';

/** Something that can be asked whether its server answers (RedisJobLock, a node-redis or ioredis client). */
interface Pingable {
  ping(): Promise<unknown>;
}

const hasPing = (value: unknown): value is Pingable =>
  typeof value === 'object' && value !== null && typeof (value as { ping?: unknown }).ping === 'function';

/**
 * A cache store's Redis client: `@keyv/redis` (`getClient()`, which connects) or any adapter with a `client` that
 * answers `ping()`; undefined for stores without one (they are not checked).
 */
function storeClient(store: unknown): Pingable | undefined {
  if (typeof store !== 'object' || store === null) return undefined;
  const { getClient, client } = store as { getClient?: unknown; client?: unknown };
  if (typeof getClient === 'function') {
    return { ping: async () => ((await getClient.call(store)) as Pingable).ping() };
  }
  return hasPing(client) ? client : undefined;
}

class ProbeTimeout extends Error {}

async function probe(target: Pingable, ms: number): Promise<HealthPart> {
  try {
    await withTimeout(target.ping(), ms, () => new ProbeTimeout(NO_ANSWER(ms)));
    return { status: 'up' };
  } catch (error) {
    return { status: 'down', message: error instanceof ProbeTimeout ? error.message : PROBE_FAILED(error) };
  }
}

/**
 * A health indicator for `@nestjs/terminus` (which stays optional: the result has terminus's
 * `HealthIndicatorResult` shape, nothing is imported from it). Down while the application shuts down, when a
 * configured Redis (the job lock, a cache store with a client that answers `ping()`, durable tasks) does not answer
 * within its timeout, or when a job has been running past its timeout. The details name each part checked.
 *
 * ```ts
 * @Get('health') @HealthCheck()
 * check() { return this.health.check([() => this.concurrency.check()]); }
 * ```
 */
@Injectable()
export class ConcurrencyHealthIndicator implements OnModuleDestroy {
  #closing = false;

  /** @internal Created by `ConcurrencyModule`: inject it. */
  constructor(
    @Inject(CONCURRENCY_OPTIONS) private readonly options: ResolvedConcurrencyOptions,
    private readonly jobs: JobRegistry,
    private readonly supervisors: SupervisorRegistry,
    @Optional() private readonly durable?: DurableSupervisor,
  ) {}

  /** The earliest close hook: health reads down from here on, while the application drains. */
  onModuleDestroy(): void {
    this.#closing = true;
  }

  /** Checks every part, in parallel; resolves `{ [key]: { status, ...parts } }`, never rejects. */
  async check(key = 'concurrency'): Promise<ConcurrencyHealthResult> {
    const probes: Array<Promise<[string, HealthPart]>> = [];
    const named = (name: string, part: Promise<HealthPart>) => probes.push(part.then((p) => [name, p]));

    // Job locks: the module's default and any job's own store, each with the longest lock timeout of its jobs.
    const locks = new Map<unknown, number>();
    if (this.options.jobs.lock !== undefined) locks.set(this.options.jobs.lock, DEFAULT_LOCK_TIMEOUT);
    for (const job of this.jobs.jobs()) {
      const lock = job.def.lock;
      if (lock !== undefined) locks.set(lock.store, Math.max(locks.get(lock.store) ?? 0, lock.timeout));
    }
    let lockIndex = 0;
    for (const [store, ms] of locks) {
      const name = locks.size === 1 ? 'jobs.lock' : `jobs.lock[${lockIndex}]`;
      lockIndex++;
      if (hasPing(store)) named(name, probe(store, ms));
    }

    const stores = this.options.cache.stores;
    stores.forEach((keyv, i) => {
      const target = storeClient((keyv as { store?: unknown }).store);
      if (target !== undefined) named(`cache.stores[${i}]`, probe(target, this.options.cache.storeTimeout));
    });

    const durable = this.durable;
    if (durable !== undefined && this.options.durable !== undefined) {
      // ping() is bounded by durable.storeTimeout itself; the outer bound only guards against a hang.
      named('durable', probe(durable, this.options.durable.storeTimeout * 2));
    }

    const now = Date.now();
    for (const job of this.jobs.jobs()) {
      const timeout = job.def.timeout;
      if (timeout === undefined || job.running === 0 || job.lastRunAt === null) continue;
      const ran = now - job.lastRunAt.getTime();
      if (ran > timeout)
        probes.push(
          Promise.resolve([`job:${job.name}`, { status: 'down', message: JOB_OVERDUE(job.name, ran, timeout) }]),
        );
    }

    // Overdue: a job whose next run is late by more than one period plus its timeout (its timer stopped firing).
    for (const job of this.jobs.jobs()) {
      const next = job.nextRunAt();
      if (next === null) continue;
      const late = now - next.getTime();
      const grace = job.period() + (job.def.timeout ?? 0);
      // A job running past its timeout is reported above, under the same name.
      if (late > grace && !(job.running > 0 && job.def.timeout !== undefined)) {
        probes.push(Promise.resolve([`job:${job.name}`, { status: 'down', message: JOB_LATE(job.name, late, grace) }]));
      }
    }

    // Saturation: a supervisor at maxChildren refuses every start until a child ends.
    for (const supervisor of this.supervisors.all()) {
      const max = maxChildren(supervisor);
      const live = supervisor.childrenPreview(0).total;
      if (max !== null && live >= max) {
        probes.push(
          Promise.resolve([
            `supervisor:${supervisor.name}`,
            { status: 'down', message: SUPERVISOR_FULL(supervisor.name, live, max, supervisor.counts.refused) },
          ]),
        );
      }
    }

    const details: ConcurrencyHealthDetails = { status: 'up' };
    if (this.#closing) details.shutdown = { status: 'down', message: SHUTTING_DOWN };
    for (const [name, part] of await Promise.all(probes)) details[name] = part;
    const failed = Object.keys(details).filter(
      (name) => name !== 'status' && (details[name] as HealthPart).status === 'down',
    );
    if (failed.length > 0) {
      details.status = 'down';
      details.failed = failed;
    }
    return { [key]: details };
  }

  /**
   * `check(key)` under the name terminus' own indicators use (`isHealthy('concurrency')`): the same result, never
   * rejects; terminus' `HealthCheckService` counts a `down` result as a failed check.
   */
  isHealthy(key = 'concurrency'): Promise<ConcurrencyHealthResult> {
    return this.check(key);
  }
}
