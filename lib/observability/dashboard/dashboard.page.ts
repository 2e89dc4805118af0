import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * This file's directory. Neither build can name it the usual way (the ES module's meta URL is not CommonJS,
 * `__dirname` is not an ES module), so it is read from V8's call site: a `file:` URL in the ES module build, a path in
 * the CommonJS one. (As the worker pools find their entry file.)
 */
function ownDirectory(): string {
  const prepare = Error.prepareStackTrace;
  const limit = Error.stackTraceLimit;
  let file: string | null | undefined;
  try {
    Error.stackTraceLimit = 1;
    Error.prepareStackTrace = (_error, sites) => sites;
    file = (new Error().stack as unknown as NodeJS.CallSite[])[0]?.getFileName();
  } finally {
    Error.prepareStackTrace = prepare;
    Error.stackTraceLimit = limit;
  }
  if (!file) return '';
  return dirname(file.startsWith('file:') ? fileURLToPath(file) : file);
}

let template: string | undefined;

/**
 * @internal The page, shipped beside this file in both builds (scripts/build.mjs copies it): one HTML file with its
 * style and script inline, no CDN. `base` is the dashboard's URL path, written into the page for its requests.
 */
export function dashboardPage(base: string, readOnly: boolean): string {
  template ??= readFileSync(join(ownDirectory(), 'dashboard.html'), 'utf8');
  const config = JSON.stringify({ base: `/${base}`, readOnly }).replace(/</g, '\\u003c');
  return template.replace('/*__CONFIG__*/ null', config);
}

/** @internal The page's own policy: nothing loads from anywhere but this server, inline code only from the page. */
export const PAGE_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
