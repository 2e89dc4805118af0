/**
 * `npm run bench` runs every benchmark, `npm run bench -- <name>` one of them. Each benchmark is a separate node
 * process (so one's heap does not weigh on the next) started with --expose-gc.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const ALL = [
  'supervisor',
  'fan-out',
  'fan-out/threads',
  'scheduling',
  'cache',
  'cache/cluster',
  'cache/methods',
  'durable',
  'durable/fan-out',
  'observability',
];
const wanted = process.argv.slice(2);
const names = wanted.length ? wanted : ALL;

let failed = false;
for (const name of names) {
  const file = join(here, name, 'index.js');
  if (!ALL.includes(name) || !existsSync(file)) {
    console.error(`Unknown benchmark "${name}". Known: ${ALL.join(', ')}.`);
    process.exitCode = 2;
    continue;
  }
  console.log(`\n### bench/${name}  (node ${process.version}, ${(await import('node:os')).cpus().length} cores)`);
  const res = spawnSync(process.execPath, ['--expose-gc', file], { stdio: 'inherit' });
  if (res.status !== 0) failed = true;
}
if (failed) process.exitCode = 1;
