// Redis memory kept per completed task with a 1 MiB result (raw BullMQ, default retention): what durable.retention
// costs. Run: node bench/durable/retention-memory.mjs (needs redis-server on the PATH).
import { spawn } from 'node:child_process';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
const port = 6399 + Math.floor(Math.random() * 500);
const srv = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
  stdio: 'ignore',
});
await new Promise((r) => setTimeout(r, 500));
const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
const redis = new Redis(connection);
const used = async () => Number(/used_memory:(\d+)/.exec(await redis.info('memory'))[1]);
const queue = new Queue('mem', { connection });
const result = 'x'.repeat(1024 * 1024);
const worker = new Worker('mem', async () => result, { connection, concurrency: 4 });
const before = await used();
const N = 50;
let done = 0;
const all = new Promise((r) => worker.on('completed', () => ++done === N && r()));
for (let i = 0; i < N; i++) await queue.add('mem', { i }, { removeOnComplete: { count: 10000, age: 86400 } });
await all;
const after = await used();
console.log(
  `${N} completed 1 MiB results kept: +${((after - before) / 1024 / 1024).toFixed(1)} MiB, ${((after - before) / N / 1024 / 1024).toFixed(2)} MiB each`,
);
await worker.close();
await queue.close();
redis.disconnect();
srv.kill();
