export { CONCURRENCY_CHANNELS } from './observability.constants.js';
export type {
  CacheMessage,
  FanOutMessage,
  JobMessage,
  SupervisorMessage,
} from './interfaces/channel-messages.interface.js';
export { ConcurrencyHealthIndicator } from './concurrency-health.indicator.js';
export type { ConcurrencyHealthDetails, ConcurrencyHealthResult, HealthPart } from './interfaces/health.interface.js';
export type { DashboardOptions } from './interfaces/dashboard-options.interface.js';
