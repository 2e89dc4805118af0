/** A dashboard path: URL path segments of safe characters, no `..`, no query or fragment. */
export const DASHBOARD_PATH = /^\/?(?!.*\.\.)[A-Za-z0-9_.\-/]+$/;

/** The default path of the dashboard. */
export const DEFAULT_DASHBOARD_PATH = '_concurrency';

/** The path as Nest's `@Controller()` takes it: no leading or trailing slash. */
export function dashboardPath(path: unknown): string {
  if (typeof path !== 'string' || !DASHBOARD_PATH.test(path)) return DEFAULT_DASHBOARD_PATH;
  return path.replace(/^\/+|\/+$/g, '') || DEFAULT_DASHBOARD_PATH;
}
