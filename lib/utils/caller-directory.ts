import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Internal: the directory of the file that calls this, for files shipped beside it (the worker entry, the dashboard
 * page). Neither build can name its own location the usual way (the ES module's meta URL is not CommonJS, `__dirname`
 * is not an ES module), so it is read from V8's call site: a `file:` URL in the ES module build, a path in the CommonJS
 * one. Throws, naming `what`, where V8 gives no file name (code run through eval, some bundlers), rather than
 * resolving the file against the working directory.
 */
export function callerDirectory(what: string): string {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  let file: string | null | undefined;
  try {
    Error.stackTraceLimit = 2;
    Error.prepareStackTrace = (_error, sites) => sites;
    const sites = new Error().stack as unknown as NodeJS.CallSite[] | undefined;
    file = Array.isArray(sites) ? sites[1]?.getFileName() : undefined;
  } catch {
    file = undefined;
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
  }
  if (!file) {
    throw new Error(
      `nestjs-concurrency cannot locate ${what}: the call site has no file name (is the package bundled or run ` +
        'through eval?). Load nestjs-concurrency from node_modules as it is published.',
    );
  }
  return dirname(file.startsWith('file:') ? fileURLToPath(file) : file);
}
