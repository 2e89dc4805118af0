/**
 * Internal: the package ships two builds, ES modules (`dist/`) and CommonJS (`dist/cjs/`). Loaded both ways in one
 * process, each would have its own classes (`FanOut`, `JobRegistry`, `CacheService`, the error classes): Nest would
 * fail to inject by class and `instanceof` would miss, far from the cause. So the second build to load refuses, at
 * once, naming both loaders. The same build loaded again (Jest's module registry per test file) is fine.
 */

/** This file's build. The CommonJS build rewrites exactly this line to 'CommonJS' (scripts/build.mjs). */
const FORMAT: string = 'ES module';

const LOADED = Symbol.for('nestjs-concurrency:loaded-build');

interface LoadedBuild {
  format: string;
  loader: string;
}

/** The first few stack frames outside Node.js and outside this build: who is loading it. */
function loader(): string {
  // Never a reason to refuse loading by itself: a custom Error.prepareStackTrace may return anything.
  try {
    return describeLoader();
  } catch {
    return '(unknown)';
  }
}

function describeLoader(): string {
  const limit = Error.stackTraceLimit;
  let stack: string;
  try {
    Error.stackTraceLimit = 50;
    stack = String(new Error().stack ?? '');
  } finally {
    Error.stackTraceLimit = limit;
  }
  const frames = stack
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.startsWith('at '))
    .map((line) => line.slice(3));
  // The first frame is this file, in <build>/utils/: every frame under <build> is this package's own.
  const file = /([^\s(]+):\d+:\d+\)?$/.exec(frames[0] ?? '')?.[1] ?? '';
  const build = file.slice(0, Math.max(0, file.lastIndexOf('utils')));
  const outside = frames.filter((line) => !line.includes('node:') && (build === '' || !line.includes(build)));
  return outside.length > 0 ? outside.slice(0, 3).join(' <- ') : '(an entry point or a dynamic import)';
}

const slot = globalThis as { [LOADED]?: LoadedBuild };
const first = slot[LOADED];
if (first === undefined) {
  slot[LOADED] = { format: FORMAT, loader: loader() };
} else if (first.format !== FORMAT) {
  throw new Error(
    `nestjs-concurrency: its ${FORMAT} build is being loaded while its ${first.format} build is already loaded in ` +
      `this process. Two builds would have two copies of every class (FanOut, JobRegistry, CacheService, the error ` +
      `classes), so injection by class and instanceof would fail. Load it one way only: import it from ES modules, ` +
      `require() it from CommonJS, and do not mix the two in one app (from CommonJS, \`await import()\` reaches ` +
      `the ES module build; from an ES module, \`createRequire()\` reaches the CommonJS build). ` +
      `First loaded (${first.format}) at: ${first.loader}. Now loaded (${FORMAT}) at: ${loader()}.`,
  );
}
