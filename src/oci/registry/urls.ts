/** `true` for hosts that are this machine: the registry is then spoken to over plain http by default. */
export function isLoopbackHost(host: string): boolean {
  const name = host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : (host.split(':')[0] ?? '');
  return name === 'localhost' || name === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(name);
}

/** Resolves a `Location` (absolute, or relative to the answering URL). Its query is kept. */
export function resolveLocation(location: string | null, answeredBy: string): URL {
  if (location === null || location === '') throw new Error('the registry answered without a Location header');
  return new URL(location, answeredBy);
}

/**
 * Adds query parameters without re-encoding the existing query: upload URLs carry opaque state
 * (`_state=...`) that URLSearchParams would re-serialise.
 */
export function withQuery(url: URL, params: Record<string, string>): URL {
  const added = Object.entries(params)
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(value)}`)
    .join('&');
  const result = new URL(url);
  result.search = result.search === '' || result.search === '?' ? `?${added}` : `${result.search}&${added}`;
  return result;
}

/** The `rel="next"` target of a `Link` header, resolved against the URL that answered. */
export function nextLink(header: string | null, answeredBy: string): URL | undefined {
  if (header === null) return undefined;
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = /^\s*<([^>]*)>(.*)$/.exec(part);
    if (match !== null && /;\s*rel="?next"?/i.test(match[2] ?? '')) return new URL(match[1] ?? '', answeredBy);
  }
  return undefined;
}
