// First: refuses to load when the package's other build (ESM or CommonJS) is already loaded in this process.
import './utils/single-build.guard.js';
export { ConcurrencyModule, type ConcurrencyModuleAsyncOptions } from './concurrency.module.js';
export type {
  ConcurrencyModuleOptions,
  ConcurrencyOptionsFactory,
} from './interfaces/concurrency-module-options.interface.js';
export * from './errors/index.js';
export * from './supervisor/index.js';
export * from './fan-out/index.js';
export * from './scheduling/index.js';
export * from './caching/index.js';
export * from './durable/index.js';
export * from './observability/index.js';
