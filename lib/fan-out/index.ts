export * from './interfaces/fan-out-module-options.interface.js';
export type {
  FanOutFn,
  FanOutInput,
  FanOutOptions,
  ItemContext,
  Outcome,
} from './interfaces/fan-out-options.interface.js';
export { FanOut } from './fan-out.service.js';
export { workerFn, type WorkerFn, type WorkerFnOptions } from './worker/worker-fn.js';
