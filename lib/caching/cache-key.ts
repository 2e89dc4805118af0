/**
 * The URL with its query parameters sorted by name, so `?b=2&a=1` and `?a=1&b=2` share a key. Only the names are
 * sorted (a stable sort): repeated parameters keep their order, since `?tag=a&tag=b` is a different request from
 * `?tag=b&tag=a` to a handler that reads the array. Internal.
 */
export function sortQuery(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const query = url.slice(q + 1);
  if (query === '') return url.slice(0, q);
  const params = query.split('&');
  if (params.length > 1) params.sort(byName);
  return `${url.slice(0, q)}?${params.join('&')}`;
}

function nameOf(param: string): string {
  const eq = param.indexOf('=');
  return eq < 0 ? param : param.slice(0, eq);
}

function byName(a: string, b: string): number {
  const x = nameOf(a);
  const y = nameOf(b);
  return x < y ? -1 : x > y ? 1 : 0;
}
