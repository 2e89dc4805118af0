// First: refuses to load when the package's other build (ESM or CommonJS) is already loaded in this process. The kit
// imports the same files as the main entry, so it shares that build's classes (FanOut, JobRegistry, ...).
import '../utils/single-build.guard.js';
export { ConcurrencyTestingModule } from './concurrency-testing.module.js';
export { ConcurrencyTester } from './concurrency-tester.js';
export type {
  ConcurrencyFailure,
  ConcurrencyTestingOptions,
} from './interfaces/concurrency-testing-options.interface.js';
