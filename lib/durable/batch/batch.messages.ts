import { describeValue, safeString } from '../../utils/describe.js';

/** Message factories of durable batches, side by side. */
export const INVALID_BATCH_OPTION = (task: string, option: string, expected: string, got: unknown) =>
  `Cannot start a batch of durable task "${task}": invalid option "${option}": expected ${expected}, got ${describeValue(got)}.`;

export const UNKNOWN_BATCH_OPTION = (task: string, option: string, allowed: string[]) =>
  `Cannot start a batch of durable task "${task}": unknown option ${JSON.stringify(safeString(option))}. ` +
  `Allowed: ${allowed.join(', ')}.`;

export const INVALID_INPUTS = (task: string, got: unknown) =>
  `Cannot start a batch of durable task "${task}": inputs must be an Iterable or AsyncIterable (an array, a ` +
  `generator), got ${describeValue(got)}.`;

export const BATCH_TASK_MISMATCH = (id: string, task: string, stored: string) =>
  `Batch ${JSON.stringify(id)} already exists for durable task "${stored}", not "${task}": a batch id names one ` +
  'batch. Use another id.';

export const BATCH_INPUT_REJECTED = (task: string, index: number) =>
  `Batch of durable task "${task}" was cancelled: input ${index} could not be stored (the items before it were). ` +
  'Check every input before starting, or pass an array: an array is checked whole before anything is stored.';

export const BATCH_CANCELLED = (id: string) => `batch ${JSON.stringify(safeString(id))} cancelled`;
export const BATCH_FAILED_FAST = (id: string, index: number) =>
  `batch ${JSON.stringify(safeString(id))} failed fast: item ${index} failed`;
export const BATCH_GONE = (id: string) =>
  `Batch ${JSON.stringify(safeString(id))} is no longer in Redis (its record expired after ` +
  'durable.retention.completed.age, or Redis lost its data).';
