import { createHash } from 'node:crypto';

/**
 * @internal The Lua scripts that advance a batch in Redis. Each runs atomically, so the batch's counts, its window of
 * running items (`concurrency`) and its cancel flag hold whichever instance runs an item, and whichever dies.
 *
 * Keys of a batch `<prefix>:~batch:<encoded id>:`: `meta` (hash: task, ff, conc, timeout, stored, total, done,
 * failed, status, err), `running` (hash: job id -> index of the items running now), `results` (hash: index -> outcome
 * JSON), `order` (list: indexes in completion order).
 */
export interface BatchScript {
  readonly source: string;
  readonly sha: string;
}

const script = (source: string): BatchScript => ({ source, sha: createHash('sha1').update(source).digest('hex') });

/** Drops the running entries whose job lock is gone (its instance died, or the attempt ended without telling). */
const CLEAN = `
local function clean(runningKey, lockPrefix)
  for _, id in ipairs(redis.call('HKEYS', runningKey)) do
    if redis.call('EXISTS', lockPrefix .. id .. ':lock') == 0 then redis.call('HDEL', runningKey, id) end
  end
end
`;

const EXPIRE = `
local function expireAll(ms)
  for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ms) end
end
`;

/**
 * CREATE: KEYS meta, index; ARGV task, failFast, concurrency, timeout, now, id, index cap.
 * -> {'new'} or {'existing', task, stored, total|''}. A new batch's id goes into the index (a sorted set by creation
 * time, the newest `index cap` kept) that lists batches without a SCAN.
 */
export const CREATE = script(`
local meta = redis.call('HMGET', KEYS[1], 'task', 'stored', 'total')
if meta[1] then return {'existing', meta[1], meta[2] or '0', meta[3] or ''} end
redis.call('HSET', KEYS[1], 'task', ARGV[1], 'ff', ARGV[2], 'conc', ARGV[3], 'timeout', ARGV[4], 'stored', '0',
  'done', '0', 'failed', '0', 'status', 'running', 'created', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[6])
redis.call('ZREMRANGEBYRANK', KEYS[2], 0, -1 - tonumber(ARGV[7]))
return {'new'}
`);

/** @internal The index of batches under `prefix`: a sorted set of batch ids by creation time (CREATE keeps it). */
export const batchIndexKey = (prefix: string) => `${prefix}:~batches`;

/** @internal Batch ids kept in the index: the newest ones. */
export const BATCH_INDEX_CAP = 1000;

/** STORED: KEYS meta; ARGV count. Raises `stored` to count (a resumed store never lowers it). */
export const STORED = script(`
local stored = tonumber(redis.call('HGET', KEYS[1], 'stored') or '0')
if tonumber(ARGV[1]) > stored then redis.call('HSET', KEYS[1], 'stored', ARGV[1]) end
return 1
`);

/**
 * SEAL: KEYS meta, running, results, order; ARGV total, retention ms. Every item is stored: the batch knows its size
 * and is done once that many outcomes are in (maybe already).
 */
export const SEAL = script(
  EXPIRE +
    `
redis.call('HSET', KEYS[1], 'total', ARGV[1], 'stored', ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'done', 'failed', 'status')
if f[3] == 'running' and tonumber(f[1]) + tonumber(f[2]) >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'status', 'done')
  expireAll(tonumber(ARGV[2]))
end
return 1
`,
);

/**
 * START (a worker, before it runs an item): KEYS meta, running, results; ARGV index, job id.
 * `concurrency` is a window over the indexes: item i may start once i < finished + concurrency. Every started item
 * has an index below that bound and `finished` of them are finished, so at most `concurrency` run at once, items
 * start in input order, and an item whose instance died keeps its place until it is taken back and finishes.
 * -> {'run', timeout} | {'wait'} (the window is full) | {'skip'} (cancelled or failed fast: never run) |
 *    {'done'} (its outcome is in: a run again after a kill) | {'gone'} (no such batch any more).
 */
export const START = script(`
local f = redis.call('HMGET', KEYS[1], 'status', 'conc', 'timeout', 'done', 'failed')
if not f[1] then return {'gone'} end
if redis.call('HEXISTS', KEYS[3], ARGV[1]) == 1 then return {'done'} end
if f[1] ~= 'running' then return {'skip'} end
local conc = tonumber(f[2] or '0')
if conc > 0 and tonumber(ARGV[1]) >= tonumber(f[4]) + tonumber(f[5]) + conc then return {'wait'} end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[1])
return {'run', f[3] or ''}
`);

/** RELEASE (an attempt that will run again, or was handed back): KEYS running; ARGV job id. Not running now. */
export const RELEASE = script(`
return redis.call('HDEL', KEYS[1], ARGV[1])
`);

/**
 * FINISH (an item ended for good): KEYS meta, running, results, order; ARGV index, job id, outcome JSON, failed
 * (1|0), retention ms. Records the first outcome of an index only (at least once: a second run adds nothing).
 * -> {'ok'} | {'dup'} | {'abort', job ids...} (fail-fast: the batch failed, these siblings run now).
 */
export const FINISH = script(
  EXPIRE +
    `
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('HSETNX', KEYS[3], ARGV[1], ARGV[3]) == 0 then return {'dup'} end
redis.call('RPUSH', KEYS[4], ARGV[1])
local f = redis.call('HMGET', KEYS[1], 'status', 'ff', 'total', 'err')
if not f[1] then return {'ok'} end
if ARGV[4] == '1' then
  redis.call('HINCRBY', KEYS[1], 'failed', 1)
  if not f[4] then redis.call('HSET', KEYS[1], 'err', ARGV[1]) end
  if f[1] == 'running' and f[2] == '1' then
    redis.call('HSET', KEYS[1], 'status', 'failed')
    expireAll(tonumber(ARGV[5]))
    local out = redis.call('HKEYS', KEYS[2])
    table.insert(out, 1, 'abort')
    return out
  end
else
  redis.call('HINCRBY', KEYS[1], 'done', 1)
end
if f[1] ~= 'running' then expireAll(tonumber(ARGV[5])) end
if f[1] == 'running' and f[3] then
  local n = redis.call('HMGET', KEYS[1], 'done', 'failed')
  if tonumber(n[1]) + tonumber(n[2]) >= tonumber(f[3]) then
    redis.call('HSET', KEYS[1], 'status', 'done')
    expireAll(tonumber(ARGV[5]))
  end
end
return {'ok'}
`,
);

/**
 * CANCEL: KEYS meta, running, results, order; ARGV retention ms. -> {'cancelled', job ids running...} | {'final', status}.
 */
export const CANCEL = script(
  EXPIRE +
    `
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return {'gone'} end
if status ~= 'running' then return {'final', status} end
redis.call('HSET', KEYS[1], 'status', 'cancelled')
expireAll(tonumber(ARGV[1]))
local out = redis.call('HKEYS', KEYS[2])
table.insert(out, 1, 'cancelled')
return out
`,
);

/**
 * STATE: KEYS meta, running; ARGV lock key prefix. -> {status, stored, total|'', done, failed, running, err|'', task}
 * after dropping running entries of dead instances.
 */
export const STATE = script(
  CLEAN +
    `
local f = redis.call('HMGET', KEYS[1], 'status', 'stored', 'total', 'done', 'failed', 'err', 'task')
if not f[1] then return {} end
clean(KEYS[2], ARGV[1])
return {f[1], f[2] or '0', f[3] or '', f[4] or '0', f[5] or '0', redis.call('HLEN', KEYS[2]), f[6] or '', f[7]}
`,
);

/** @internal The Redis calls the batch code sends (ioredis). */
export interface BatchRedis {
  evalsha(sha: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>;
  eval(source: string, numKeys: number, ...args: Array<string | number>): Promise<unknown>;
  hmget(key: string, ...fields: string[]): Promise<Array<string | null>>;
  lrange(key: string, start: number, stop: number): Promise<string[]>;
  zrevrange(key: string, start: number, stop: number): Promise<string[]>;
  zcard(key: string): Promise<number>;
  zrem(key: string, ...members: string[]): Promise<number>;
  publish(channel: string, message: string): Promise<number>;
}

/** Runs a script by its SHA, loading it on the first NOSCRIPT (a restarted or flushed Redis). */
export async function runScript(
  client: BatchRedis,
  s: BatchScript,
  keys: string[],
  args: Array<string | number>,
): Promise<unknown> {
  try {
    return await client.evalsha(s.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!String((error as Error | undefined)?.message).includes('NOSCRIPT')) throw error;
    return client.eval(s.source, keys.length, ...keys, ...args);
  }
}

/** The keys of batch `encodedId` (`toJobId` of its id) under `prefix`: meta, running, results, order. */
export function batchKeys(prefix: string, encodedId: string): [string, string, string, string] {
  const base = `${prefix}:~batch:${encodedId}:`;
  return [`${base}meta`, `${base}running`, `${base}results`, `${base}order`];
}
