import { statusOf } from './handler-result.js';

/**
 * What a handler set on the response besides its body (its status and the headers it added or changed), kept with the
 * cached body and set again on every request the entry serves: a waiter, another instance, a hit. Internal.
 */
export interface ResponseMeta {
  /** The status the handler set, when it differs from the one the route had before it ran. */
  s?: number;
  /** The headers the handler set (lower-case names), in the order it left them. */
  h?: Array<[string, string | string[]]>;
}

type HeaderValue = string | number | string[];
export type Headers = Record<string, HeaderValue | undefined>;

/** Headers that describe one transfer, not the response: never replayed. */
const NOT_REPLAYED = new Set(['connection', 'content-length', 'date', 'keep-alive', 'transfer-encoding', 'x-cache']);

/** The headers set on a response so far (Express `res`, Fastify `reply`, a Node response), lower-case names. */
export function headersOf(response: unknown): Headers {
  const r = response as { getHeaders?: () => Headers } | null | undefined;
  if (typeof r?.getHeaders !== 'function') return {};
  try {
    return { ...r.getHeaders() };
  } catch {
    return {};
  }
}

const same = (a: HeaderValue | undefined, b: HeaderValue | undefined): boolean =>
  Array.isArray(a) && Array.isArray(b) ? a.length === b.length && a.every((v, i) => v === b[i]) : a === b;

/**
 * What the handler changed on `response` since `before` (its headers and status before the handler ran), or
 * undefined when it changed nothing that is replayed.
 */
export function responseMeta(
  before: { headers: Headers; status: number | undefined },
  response: unknown,
): ResponseMeta | undefined {
  const after = headersOf(response);
  let h: ResponseMeta['h'];
  for (const name of Object.keys(after)) {
    const value = after[name];
    if (value === undefined || NOT_REPLAYED.has(name) || same(value, before.headers[name])) continue;
    (h ??= []).push([name, Array.isArray(value) ? value.map(String) : String(value)]);
  }
  const status = statusOf(response);
  const s = status !== undefined && status !== before.status ? status : undefined;
  if (h === undefined && s === undefined) return undefined;
  return s === undefined ? { h } : h === undefined ? { s } : { s, h };
}

/** A `Cache-Control` value that forbids a shared cache to store the response (`no-store`, `private`). */
export function forbidsSharedStore(headers: Headers): boolean {
  const value = headers['cache-control'];
  if (value === undefined) return false;
  const text = (Array.isArray(value) ? value.join(',') : String(value)).toLowerCase();
  return /(?:^|[\s,])(?:no-store|private)(?:$|[\s,=])/.test(text);
}

/** Whether a response sets a cookie (meant for one client: never shared). */
export function setsCookie(headers: Headers): boolean {
  return headers['set-cookie'] !== undefined;
}
