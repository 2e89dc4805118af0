import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { callerDirectory } from '../../utils/caller-directory.js';

let template: string | undefined;

/**
 * @internal The page, shipped beside this file in both builds (scripts/build.mjs copies it): one HTML file with its
 * style and script inline, no CDN. `base` is the dashboard's URL path, written into the page for its requests.
 */
export function dashboardPage(base: string, readOnly: boolean): string {
  template ??= readFileSync(join(callerDirectory('its dashboard page'), 'dashboard.html'), 'utf8');
  const config = JSON.stringify({ base: `/${base}`, readOnly }).replace(/</g, '\\u003c');
  return template.replace('/*__CONFIG__*/ null', config);
}

/** @internal The page's own policy: nothing loads from anywhere but this server, inline code only from the page. */
export const PAGE_CSP =
  "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
