export { CONCURRENCY_CHANNELS } from './observability.constants.js';
export type {
  CacheMessage,
  FanOutMessage,
  JobMessage,
  SupervisorMessage,
} from './interfaces/channel-messages.interface.js';
