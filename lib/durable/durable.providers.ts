import type { Provider } from '@nestjs/common';
import { CONCURRENCY_OPTIONS } from '../concurrency.constants.js';
import type { ResolvedConcurrencyOptions } from '../interfaces/concurrency-module-options.interface.js';
import { DurableHandlers } from './durable-handlers.js';
import { DurableSupervisor } from './durable-supervisor.js';
import { DURABLE_BULLMQ } from './durable.constants.js';
import { DurableExplorer } from './durable.explorer.js';
import { ConcurrencyOptionsError } from '../errors/concurrency-options.error.js';
import { isRedisClient, loadBullMQ } from './durable.loader.js';
import { CLUSTER_CONNECTION } from './durable.messages.js';
import { DurableWorkers } from './durable.workers.js';

/**
 * Providers of durable tasks, registered by `ConcurrencyModule` only when `durable` is given (always with
 * `forRootAsync`, whose options are not known yet: then they stay idle without `durable`). `bullmq` is loaded here,
 * at boot, only when `durable` is set.
 */
export function createDurableProviders(configured = true): Provider[] {
  // Without `durable`, only the explorer: a @TaskHandler then fails boot instead of never running.
  if (!configured) return [DurableHandlers, DurableExplorer];
  return [
    {
      provide: DURABLE_BULLMQ,
      inject: [CONCURRENCY_OPTIONS],
      useFactory: (options: ResolvedConcurrencyOptions) => {
        if (!options.durable) return undefined;
        const { connection } = options.durable;
        // A Cluster's options do not say where its nodes are: they cannot be copied per role as a client's are.
        if (typeof connection === 'object' && isRedisClient(connection) && connection.isCluster === true) {
          throw new ConcurrencyOptionsError('durable.connection', CLUSTER_CONNECTION());
        }
        return loadBullMQ();
      },
    },
    DurableHandlers,
    DurableExplorer,
    DurableWorkers,
    DurableSupervisor,
  ];
}
