import type { OciErrorCode } from '../errors.ts';
import type { Authenticator } from './auth.ts';
import type { Scope } from './scope.ts';
import { registryError } from './errors.ts';
import { maxErrorBodyBytes, readPrefix, type HttpRequest, type HttpResponse, type HttpTransport } from './http.ts';

export interface Call extends Omit<HttpRequest, 'url'> {
  /** A path under the registry (`/v2/...`) or a URL it gave (an upload Location, a Link). */
  url: string | URL;
  scopes: Scope[];
  /** Statuses that are answers; any other becomes an OciError. */
  expect: number[];
  /** What a 404 without an error body means here. */
  notFound?: OciErrorCode;
}

/** Authenticated calls to one registry: the Authorization header, one re-authentication after a 401, errors as OciError. */
export class RegistryClient {
  readonly registry: string;
  readonly base: URL;
  readonly #transport: HttpTransport;
  readonly #auth: Authenticator;

  constructor(registry: string, base: URL, transport: HttpTransport, auth: Authenticator) {
    this.registry = registry;
    this.base = base;
    this.#transport = transport;
    this.#auth = auth;
  }

  async call(call: Call): Promise<HttpResponse> {
    const url = new URL(call.url, this.base);
    // Credentials go only to the registry itself, never to a storage backend it redirects to.
    const sameOrigin = url.origin === this.base.origin;
    let authorization = sameOrigin ? await this.#auth.header(call.scopes) : undefined;
    const send = (header: string | undefined) =>
      this.#transport.send({ ...call, url, headers: { ...call.headers, ...(header === undefined ? {} : { authorization: header }) } });
    let response = await send(authorization);
    if (response.status === 401 && sameOrigin) {
      response.stream?.resume();
      const renewed = await this.#auth.reauthenticate(call.scopes, response.headers.get('www-authenticate'));
      if (renewed !== undefined && renewed !== authorization) {
        authorization = renewed;
        response = await send(authorization);
      }
    }
    if (call.expect.includes(response.status)) return response;
    const body = response.stream === undefined ? response.body : await readPrefix(response.stream, maxErrorBodyBytes);
    response.stream?.destroy();
    throw registryError(response.status, Buffer.from(body).toString('utf8'), call.subject, this.registry, call.notFound);
  }
}
