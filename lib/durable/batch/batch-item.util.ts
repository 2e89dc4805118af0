import { toJobId } from '../utils/job-id.util.js';
import { batchKeys } from './batch.scripts.js';

/**
 * @internal The BullMQ job name of a batch item. A task name never holds ":", so no `startChild()` job carries it:
 * the worker knows a batch item by it.
 */
export const BATCH_ITEM = 'batch:item';

/** @internal The child id of item `index` of batch `batchId`: `<batch id>#<index>` (the id of every event about it). */
export const itemId = (batchId: string, index: number) => `${batchId}#${index}`;

/** @internal The batch id and index of a batch item's child id, with its batch's keys. */
export function parseItem(prefix: string, childId: string): { batchId: string; index: number; keys: string[] } {
  const at = childId.lastIndexOf('#');
  const batchId = childId.slice(0, at);
  return { batchId, index: Number(childId.slice(at + 1)), keys: batchKeys(prefix, toJobId(batchId)) };
}

/** @internal An item's outcome as stored in the batch's results hash. */
export interface StoredOutcome {
  /** The value (absent: the handler returned undefined). */
  v?: unknown;
  /** The failure's message. */
  e?: string;
  /** The kind of failure: 'failed', 'timeout', 'terminated'. */
  k?: string;
}

/** @internal The outcome JSON of a fulfilled item whose value's JSON is `json` (undefined: no value). */
export const fulfilledJson = (json: string | undefined) => (json === undefined ? '{}' : `{"v":${json}}`);

/** @internal The outcome JSON of an item that failed for good. */
export const rejectedJson = (message: string, kind: string) => JSON.stringify({ e: message, k: kind });
