import { channel } from 'node:diagnostics_channel';
import { CONCURRENCY_CHANNELS } from './observability.constants.js';

/**
 * @internal The channels, held for the life of the process. A source publishes only while `hasSubscribers` is true,
 * and builds its message only then: nothing is allocated per event while nobody listens.
 */
export const supervisorChannel = channel(CONCURRENCY_CHANNELS.supervisor);
/** @internal */
export const jobChannel = channel(CONCURRENCY_CHANNELS.job);
/** @internal */
export const fanOutChannel = channel(CONCURRENCY_CHANNELS.fanOut);
/** @internal */
export const cacheChannel = channel(CONCURRENCY_CHANNELS.cache);
/** @internal */
export const durableChannel = channel(CONCURRENCY_CHANNELS.durable);
