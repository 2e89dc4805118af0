'use strict';
/*
 * The entry file of every FanOut worker pool (piscina's `filename`), run on each worker thread. It loads the worker
 * module (workerData.module, a file: URL) once per thread and runs one item per task: `export(input, { index })`.
 *
 * Plain CommonJS, not compiled: the ES module build, the CommonJS build and the TypeScript sources (under a test
 * runner) all load this very file, and its `import()` is Node's own, so it loads ES modules and CommonJS alike.
 * Errors cross the thread as plain objects marked with MARK (structured clone keeps the class name of built-in errors
 * only), so the pool can tell an item's own failure from a thread that failed outside the function.
 */
const { workerData } = require('node:worker_threads');

const moduleUrl = workerData.module;
/** Marks an error this file serialised; the pool rebuilds an Error from it (lib/fan-out/worker/worker-pools.ts). */
const MARK = 'nestjs-concurrency:worker-error';

let loading;
const exports_ = new Map();

const label = (name) => `workerFn(${moduleUrl}, ${JSON.stringify(name)})`;

function plain(name, message, stack, code) {
  return { [MARK]: true, name, message, stack, code };
}

function safe(fn, fallback) {
  try {
    return fn();
  } catch {
    return fallback;
  }
}

/** A thrown value as something structured clone carries: an Error keeps its class name, message, stack and code. */
function serialise(error) {
  const isErrorLike = safe(
    () => error instanceof Error || (typeof error === 'object' && error !== null && typeof error.message === 'string'),
    false,
  );
  if (isErrorLike) {
    let name = safe(() => error.name, undefined);
    const ctor = safe(() => error.constructor && error.constructor.name, undefined);
    if ((typeof name !== 'string' || name === 'Error') && typeof ctor === 'string' && ctor !== '') name = ctor;
    const code = safe(() => error.code, undefined);
    return plain(
      typeof name === 'string' ? name : 'Error',
      String(safe(() => error.message, '')),
      String(safe(() => error.stack, '')),
      typeof code === 'string' || typeof code === 'number' ? code : undefined,
    );
  }
  try {
    // A thrown value that is not an Error (a string, a plain object) crosses as it is.
    return { [MARK]: true, value: structuredClone(error) };
  } catch {
    const text = safe(() => String(error), typeof error);
    return plain('Error', `the worker function threw a value that cannot be sent back: ${text}`, '', undefined);
  }
}

async function load(name) {
  let mod;
  try {
    mod = await (loading ??= import(moduleUrl));
  } catch (error) {
    loading = undefined;
    const why = safe(() => error.message, String(error));
    throw plain(
      'Error',
      `${label(name)}: cannot load the worker module: ${why}`,
      '',
      safe(() => error.code, undefined),
    );
  }
  let fn = mod[name];
  // CommonJS compiled from TypeScript: `exports.default = fn` is mod.default.default, and a named export that Node's
  // CommonJS export detection missed is mod.default[name].
  if (typeof fn !== 'function' && mod.default !== null && typeof mod.default === 'object') {
    const inner = mod.default[name];
    if (typeof inner === 'function') fn = inner;
  }
  if (typeof fn !== 'function') {
    const found = Object.keys(mod).filter((key) => typeof mod[key] === 'function');
    throw plain(
      'TypeError',
      `${label(name)}: the module has no function export "${name}" ` +
        `(${found.length === 0 ? 'it exports no function' : `its function exports: ${found.join(', ')}`}).`,
      '',
      undefined,
    );
  }
  exports_.set(name, fn);
  return fn;
}

/** One item: `task` is { e: export name, i: index, x: input }. */
module.exports = async function runItem(task) {
  const fn = exports_.get(task.e) ?? (await load(task.e));
  try {
    return await fn(task.x, { index: task.i });
  } catch (error) {
    throw serialise(error);
  }
};
