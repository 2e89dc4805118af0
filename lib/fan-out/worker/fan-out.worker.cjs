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

/** Nested causes and aggregated errors are carried this deep; deeper ones (and cycles) are left out. */
const MAX_DEPTH = 8;
const SKIP = new Set(['name', 'message', 'stack', 'cause', 'errors']);

/**
 * A thrown value as something structured clone carries: an Error keeps its class name, message, stack, code, `cause`
 * (serialised the same way), `errors` (an AggregateError's) and its own enumerable properties that structured clone
 * can carry (`status`, `details`...; a property it cannot carry, such as a function, is left out).
 */
function serialise(error, seen = new Set(), depth = 0) {
  const isErrorLike = safe(
    () => error instanceof Error || (typeof error === 'object' && error !== null && typeof error.message === 'string'),
    false,
  );
  if (isErrorLike) {
    let name = safe(() => error.name, undefined);
    const ctor = safe(() => error.constructor && error.constructor.name, undefined);
    if ((typeof name !== 'string' || name === 'Error') && typeof ctor === 'string' && ctor !== '') name = ctor;
    const code = safe(() => error.code, undefined);
    const out = plain(
      typeof name === 'string' ? name : 'Error',
      String(safe(() => error.message, '')),
      String(safe(() => error.stack, '')),
      typeof code === 'string' || typeof code === 'number' ? code : undefined,
    );
    seen.add(error);
    const nested = (value) =>
      depth >= MAX_DEPTH || (typeof value === 'object' && value !== null && seen.has(value))
        ? undefined
        : { v: serialise(value, seen, depth + 1) };
    if (safe(() => 'cause' in error, false)) {
      const cause = nested(safe(() => error.cause, undefined));
      if (cause !== undefined) out.cause = cause.v;
    }
    const errors = safe(() => error.errors, undefined);
    if (Array.isArray(errors)) {
      out.errors = errors.map((item) => {
        const kept = nested(item);
        return kept === undefined ? plain('Error', '[left out: a cycle or nested too deep]', '', undefined) : kept.v;
      });
    }
    const props = {};
    for (const key of safe(() => Object.keys(error), [])) {
      if (SKIP.has(key)) continue;
      try {
        props[key] = structuredClone(error[key]);
      } catch {
        // not carried by structured clone (a function, a socket): left out
      }
    }
    out.props = props;
    return out;
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
