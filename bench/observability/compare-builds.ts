/**
 * The context binding's cost (issue 26) against another build of the library, in the same process: the 1,000,000
 * `startChild()` burst (and the same paced at 1,000 per macrotask) on a supervisor of each build, rounds alternating.
 * Not part of `npm run bench` (it needs the other build):
 *
 *   git worktree add /tmp/base <commit> && (cd /tmp/base && npm ci && npm run build)
 *   cp -r /tmp/base/dist node_modules/.base-dist        # inside this repository, so its imports resolve
 *   npm run build && tsc -p bench/tsconfig.json
 *   BASE_DIST=$PWD/node_modules/.base-dist node --expose-gc bench/dist/observability/compare-builds.js
 */
import { TaskSupervisor } from 'nestjs-concurrency';
import { compare, gc } from '../harness.js';

const N = Number(process.env.BENCH_TASKS ?? 1_000_000);
const nextMacrotask = () => new Promise<void>((resolve) => setImmediate(resolve));
type Supervisor = { startChild(fn: () => Promise<void>): unknown };

const base = process.env.BASE_DIST;
if (!base) throw new Error('Set BASE_DIST to the dist/ folder of the build to compare against (see the header).');
const baseline = (await import(`${base}/index.js`)) as { TaskSupervisor: new (name: string) => Supervisor };
const Ours = TaskSupervisor as unknown as new (name: string) => Supervisor;

async function timeTasks(supervisor: Supervisor, perTick = N): Promise<number> {
  let done = 0;
  let finish!: () => void;
  const all = new Promise<void>((resolve) => (finish = resolve));
  const fn = async () => {
    if (++done === N) finish();
  };
  gc();
  const t0 = performance.now();
  for (let i = 0; i < N;) {
    const end = Math.min(N, i + perTick);
    for (; i < end; i++) supervisor.startChild(fn);
    if (i < N) await nextMacrotask();
  }
  await all;
  await nextMacrotask();
  return ((performance.now() - t0) * 1e6) / N;
}

const a = new baseline.TaskSupervisor('base');
const b = new Ours('ours');
const rounds = Number(process.env.BENCH_ROUNDS ?? 7);
await compare(
  `${N.toLocaleString('en')} startChild() in one burst`,
  'ns',
  { name: 'base build', run: () => timeTasks(a) },
  { name: 'this build', run: () => timeTasks(b) },
  rounds,
);
await compare(
  `${N.toLocaleString('en')} startChild() at 1,000 per macrotask`,
  'ns',
  { name: 'base build', run: () => timeTasks(a, 1000) },
  { name: 'this build', run: () => timeTasks(b, 1000) },
  rounds,
);
