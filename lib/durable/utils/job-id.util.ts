/**
 * @internal A BullMQ job id is the suffix of Redis keys (`<prefix>:<task>:<id>`), next to the queue's own keys
 * (`wait`, `active`, `marker`, `meta`, `id`, `stalled-check`, ...). The caller's id never goes there as it is: it is
 * stored as "~" and its UTF-8 bytes in base64url, which no key name of BullMQ starts with, and which holds no ":"
 * and is never an integer; `fromJobId` maps it back.
 */
export function toJobId(id: string): string {
  return `~${Buffer.from(id, 'utf8').toString('base64url')}`;
}

/**
 * @internal The job id of item `index` of batch `batchId`: `toJobId(batchId)`, "#", the index. `toJobId` never makes
 * a "#" (not in base64url), so no `startChild()` id, e.g. "<batch id>#0", names an item's job.
 */
export function toItemJobId(batchId: string, index: number): string {
  return `${toJobId(batchId)}#${index}`;
}

/**
 * @internal The caller's id of a job id made by `toJobId` (another id, stored by hand in the queue, as it is); of a
 * batch item's job id (`toItemJobId`), "<batch id>#<index>".
 */
export function fromJobId(jobId: string): string {
  if (!jobId.startsWith('~')) return jobId;
  const at = jobId.indexOf('#');
  if (at === -1) return Buffer.from(jobId.slice(1), 'base64url').toString('utf8');
  return `${Buffer.from(jobId.slice(1, at), 'base64url').toString('utf8')}${jobId.slice(at)}`;
}

/** The longest id a caller may give: the encoded key stays short for Redis. */
export const MAX_CHILD_ID_LENGTH = 512;
