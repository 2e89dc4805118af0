import { Inject, Injectable, type OnApplicationShutdown } from '@nestjs/common';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import type { ConcurrencyTracer } from '../observability/tracing/concurrency-tracer.js';
import { TaskSupervisor } from './task-supervisor.js';

/**
 * Owns every supervisor of one application: those in the resolved options, plus any injected name missing from them
 * (created with the defaults). `app.close()` (and SIGTERM with `enableShutdownHooks()`) drains them all in parallel,
 * each with its own `shutdownTimeout`.
 *
 * Internal: not exported from the package. Yet not tagged internal for `stripInternal`: the constructors of `FanOut` and
 * `CacheService` take it, and `stripInternal` would leave their declarations importing a class that is not there
 * (TS2305 for users with `skipLibCheck: false`).
 */
@Injectable()
export class SupervisorRegistry implements OnApplicationShutdown {
  private readonly supervisors = new Map<string, TaskSupervisor>();
  /**
   * @internal Set at boot when the application traces (`ConcurrencyTracing`); every supervisor, later ones too, uses
   * it.
   */
  tracer: ConcurrencyTracer | undefined;

  constructor(@Inject(CONCURRENCY_OPTIONS) private readonly options: ResolvedConcurrencyOptions) {
    for (const [name, opts] of Object.entries(options.supervisors)) {
      this.supervisors.set(name, new TaskSupervisor(name, opts));
    }
  }

  get(name: string): TaskSupervisor {
    let supervisor = this.supervisors.get(name);
    if (supervisor === undefined) {
      supervisor = new TaskSupervisor(name, { shutdownTimeout: this.options.shutdownTimeout });
      supervisor.tracer = this.tracer;
      this.supervisors.set(name, supervisor);
    }
    return supervisor;
  }

  /** @internal */
  setTracer(tracer: ConcurrencyTracer | undefined): void {
    this.tracer = tracer;
    for (const supervisor of this.supervisors.values()) supervisor.tracer = tracer;
  }

  all(): TaskSupervisor[] {
    return [...this.supervisors.values()];
  }

  async onApplicationShutdown(): Promise<void> {
    await Promise.all(this.all().map((supervisor) => supervisor.shutdown()));
  }
}
