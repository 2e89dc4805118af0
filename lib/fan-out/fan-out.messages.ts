/** Message factories of the fan-out pattern, kept together so they read alike. */

import { describeValue } from '../utils/describe.js';

export const invalidOptionMessage = (method: string, option: string, expected: string, got: unknown): string =>
  `FanOut.${method}(): invalid option "${option}": expected ${expected}, got ${describeValue(got)}.`;

export const SIBLING_FAILED = 'another item of the fan-out failed';
export const CONSUMER_STOPPED = 'the stream consumer stopped early';
export const SOURCE_FAILED = 'the input sequence threw';
export const GROUP_FAILED = 'another task of the group failed';
export const SHUTDOWN = 'application shutdown';

// ---- worker threads (workerFn) --------------------------------------------------------------------------------------

/** How a worker function is named in messages: the module and the export. */
export const workerLabel = (module: string, exportName: string): string =>
  `workerFn(${module}, ${JSON.stringify(exportName)})`;

/** Spelt in pieces: scripts/build.mjs refuses the CommonJS build if its text holds the ES-module-only meta property. */
const IMPORT_META_URL = ['import', 'meta', 'url'].join('.');

export const invalidWorkerModuleMessage = (got: string): string =>
  `workerFn(): invalid argument "module": expected a URL or an absolute path of a JavaScript file, got ${got}. ` +
  `From an ES module pass new URL('./my.worker.js', ${IMPORT_META_URL}); from CommonJS, ` +
  `path.join(__dirname, 'my.worker.js').`;

export const invalidWorkerExportMessage = (module: string, got: string): string =>
  `workerFn(${module}): invalid argument "exportName": expected a non-empty string, got ${got}.`;

export const invalidWorkerOptionMessage = (label: string, option: string, expected: string, got: unknown): string =>
  `${label}: invalid option "${option}": expected ${expected}, got ${describeValue(got)}.`;

export const workerCalledDirectlyMessage = (label: string): string =>
  `${label} runs on a worker thread of FanOut: pass it to FanOut.map(), settle(), stream() or stream$() ` +
  `instead of calling it.`;

export const workerModuleMissingMessage = (label: string, path: string, typescript: boolean): string =>
  `${label}: the worker module ${path} does not exist.` +
  (typescript
    ? ' Its TypeScript source is there: a worker thread runs JavaScript only, so point workerFn at the compiled file ' +
      '(build first, e.g. dist/), or write the worker module in JavaScript.'
    : ' Point workerFn at the compiled JavaScript file (in a Nest app, the one under dist/).');

export const piscinaMissingMessage = (label: string, why: string): string =>
  `${label} needs the optional peer dependency "piscina" (npm install piscina): ${why}`;

export const workerCloneMessage = (label: string, index: number, why: string): string =>
  `${label}: the input of item ${index} cannot be sent to a worker thread (structured clone: ${why}). ` +
  `Send plain data (objects, arrays, strings, numbers, typed arrays): no functions, class instances with methods, ` +
  `sockets or streams.`;

export const workerResultMessage = (label: string, index: number, got: string): string =>
  `${label}: the worker thread failed after the function returned for item ${index} (${got}): most likely its ` +
  `result cannot be sent back (structured clone). Return plain data: no functions, class instances with methods, ` +
  `sockets or streams.`;

export const workerEntryMissingMessage = (path: string): string =>
  `FanOut worker threads: the entry file ${path} of nestjs-concurrency is missing. ` +
  `Do not bundle nestjs-concurrency into the app (keep it in node_modules), or copy this file next to the bundle.`;

export const workerDetachedMessage = (label: string, index: number): string =>
  `${label}: the input of item ${index} holds a detached ArrayBuffer (already transferred, e.g. by an earlier item ` +
  `with transfer: true, or moved): it cannot be sent to a worker thread. Send each buffer once, or copy it first ` +
  `(buffer.slice()).`;

export const workerDiedMessage = (label: string, index: number, why: string): string =>
  `${label}: the worker thread died while running item ${index} (${why}). process.exit() in the worker function or ` +
  `while its module loads ends the thread, as does running out of memory (fanOut.resourceLimits): the pool starts ` +
  `a new thread for the next item.`;

export const WORKERS_CLOSED = 'the application is shutting down: its worker threads are closed';

export const THREADS_LEFT = (ms: number): string =>
  `FanOut: worker threads still had not exited ${ms} ms after their pools were destroyed at shutdown; app.close() goes on without them.`;
