import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { callerDirectory } from '../../utils/caller-directory.js';

/** The page's template and its Content-Security-Policy, read once (the hashes are of its fixed script and style). */
let page: { template: string; csp: string } | undefined;

const CONFIG_MARK = '__CONFIG__';

function load(): { template: string; csp: string } {
  if (page) return page;
  const template = readFileSync(join(callerDirectory('its dashboard page'), 'dashboard.html'), 'utf8');
  const hash = (tag: string) => {
    const text = new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`).exec(template)?.[1];
    if (text === undefined) throw new Error(`The dashboard page has no <${tag}> element.`);
    return `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`;
  };
  // Inline code only by the hash of the page's own script and style: no 'unsafe-inline', so a markup injection
  // (a future escaping bug) cannot run a script. The config goes in a JSON data block, which is not executed.
  const csp =
    `default-src 'none'; script-src ${hash('script')}; style-src ${hash('style')}; connect-src 'self'; ` +
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
  page = { template, csp };
  return page;
}

/**
 * @internal The page, shipped beside this file in both builds (scripts/build.mjs copies it): one HTML file with its
 * style and script inline, no CDN. Its settings go into a JSON data block (`<` escaped, so it cannot end the block).
 */
export function dashboardPage(readOnly: boolean): string {
  const config = JSON.stringify({ readOnly }).replace(/</g, '\\u003c');
  return load().template.replace(CONFIG_MARK, config);
}

/** @internal The page's own policy: nothing loads from anywhere but this server, inline code only by hash. */
export function pageCsp(): string {
  return load().csp;
}
