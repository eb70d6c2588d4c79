import { createHash } from 'node:crypto';
import { OciError } from '../errors.ts';
import { parseChallenges, type Challenge } from './challenge.ts';
import type { CredentialProvider } from './credential-provider.ts';
import type { Credential } from './credentials.ts';
import { credentialsHint, registryError } from './errors.ts';
import type { HttpTransport } from './http.ts';
import { credentialRepository, scopeString, type Scope } from './scope.ts';
import { TokenCache, type Token } from './token-cache.ts';

/** Token lifetimes are cut short by this much, so a token is never sent just as it expires. */
const expiryMarginMs = 10_000;

/** Prefers a bearer challenge (tokens scoped per repository) over basic when a registry offers both. */
function preferredChallenge(header: string | null): Challenge | undefined {
  if (header === null) return undefined;
  const challenges = parseChallenges(header);
  return challenges.find((challenge) => challenge.scheme === 'bearer') ?? challenges.find((challenge) => challenge.scheme === 'basic');
}

function basicHeader(credential: Credential): string {
  return `Basic ${Buffer.from(`${credential.username ?? ''}:${credential.password ?? ''}`).toString('base64')}`;
}

function credentialIdentity(credential: Credential | undefined): string {
  if (credential === undefined) return 'anonymous';
  return createHash('sha256').update(JSON.stringify(credential)).digest('hex').slice(0, 16);
}

/**
 * What each registry (by origin) answered to the `/v2/` ping: its scheme and token service are
 * the registry's, whoever asks, so every store of the process shares one ping per registry (the
 * operator opens a store per swap, with that Stackerfile's credentials). A failed ping is not kept.
 */
const challenges = new Map<string, Promise<Challenge | undefined>>();

/**
 * Authentication against one registry: learns the scheme from a `/v2/` ping (once per process), then
 * attaches plain Basic credentials, or bearer tokens fetched from the token service
 * (anonymously or with Basic credentials / an identity token) and cached (see TokenCache).
 */
export class Authenticator {
  readonly #registry: string;
  readonly #base: URL;
  readonly #transport: HttpTransport;
  readonly #credentials: CredentialProvider;
  readonly #tokens = new TokenCache();
  readonly #credentialCache = new Map<string, Promise<Credential | undefined>>();

  constructor(registry: string, base: URL, transport: HttpTransport, credentials: CredentialProvider) {
    this.#registry = registry;
    this.#base = base;
    this.#transport = transport;
    this.#credentials = credentials;
  }

  #ping(): Promise<Challenge | undefined> {
    const origin = this.#base.origin;
    let challenge = challenges.get(origin);
    if (challenge !== undefined) return challenge;
    challenge = (async () => {
      const response = await this.#transport.send({ method: 'GET', url: new URL('/v2/', this.#base), subject: `docker://${this.#registry}`, read: 'buffer' });
      if (response.status === 200) return undefined;
      if (response.status === 401) return preferredChallenge(response.headers.get('www-authenticate'));
      throw new OciError(
        'REGISTRY_ERROR',
        `docker://${this.#registry}: GET /v2/ answered HTTP ${response.status}, not as an OCI registry does`,
        'check the registry host and port (and whether it speaks http or https)',
      );
    })();
    challenges.set(origin, challenge);
    // A failed ping (registry down) is asked again next time rather than remembered.
    challenge.catch(() => {
      if (challenges.get(origin) === challenge) challenges.delete(origin);
    });
    return challenge;
  }

  #credential(repository: string): Promise<Credential | undefined> {
    let found = this.#credentialCache.get(repository);
    if (found === undefined) {
      found = this.#credentials(this.#registry, repository);
      this.#credentialCache.set(repository, found);
      found.catch(() => this.#credentialCache.delete(repository));
    }
    return found;
  }

  /** The Authorization header for a request needing these scopes, or undefined when none is needed or possible. */
  async header(scopes: Scope[]): Promise<string | undefined> {
    const challenge = await this.#ping();
    if (challenge === undefined) return undefined;
    const credential = await this.#credential(credentialRepository(scopes));
    if (challenge.scheme === 'basic') return credential?.username === undefined ? undefined : basicHeader(credential);
    if (challenge.scheme !== 'bearer') return undefined;
    if (credential?.registryToken !== undefined) return `Bearer ${credential.registryToken}`;
    const identity = credentialIdentity(credential);
    let token = this.#tokens.get(identity, scopes);
    if (token === undefined) {
      token = this.#fetchToken(challenge, scopes, credential);
      this.#tokens.set(identity, scopes, token);
    }
    return `Bearer ${(await token).token}`;
  }

  /**
   * After a 401: takes the challenge of that answer (a registry may only ask for auth on
   * repositories), forgets tokens for these scopes and the credential used (it may have been
   * rotated since: the provider is asked again), and returns a fresh header.
   */
  async reauthenticate(scopes: Scope[], wwwAuthenticate: string | null): Promise<string | undefined> {
    const challenge = preferredChallenge(wwwAuthenticate);
    if (challenge !== undefined) challenges.set(this.#base.origin, Promise.resolve(challenge));
    this.#tokens.forget(scopes);
    this.#credentialCache.delete(credentialRepository(scopes));
    return this.header(scopes);
  }

  async #fetchToken(challenge: Challenge, scopes: Scope[], credential: Credential | undefined): Promise<Token> {
    const realm = challenge.params['realm'];
    if (realm === undefined) {
      throw new OciError('REGISTRY_ERROR', `docker://${this.#registry}: bearer challenge without a realm`, 'the registry\'s auth configuration is broken');
    }
    const url = new URL(realm, this.#base);
    const subject = `token service ${url.origin}${url.pathname} for ${this.#registry}`;
    const service = challenge.params['service'];
    const scopeStrings = scopes.map(scopeString);
    const identityToken = credential?.identityToken;
    const response =
      identityToken !== undefined
        ? await this.#transport.send({
            method: 'POST',
            url,
            subject,
            read: 'buffer',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: Buffer.from(
              new URLSearchParams({
                grant_type: 'refresh_token',
                refresh_token: identityToken,
                client_id: 'restack',
                ...(service === undefined ? {} : { service }),
                scope: scopeStrings.join(' '),
              }).toString(),
            ),
          })
        : await this.#transport.send({
            method: 'GET',
            url: (() => {
              if (service !== undefined) url.searchParams.set('service', service);
              for (const scope of scopeStrings) url.searchParams.append('scope', scope);
              return url;
            })(),
            subject,
            read: 'buffer',
            headers: credential?.username === undefined ? {} : { authorization: basicHeader(credential) },
          });
    if (response.status === 401 || response.status === 403) {
      const who = credential === undefined ? 'anonymous access' : credential.username === undefined ? 'the identity token' : `the credentials of user "${credential.username}"`;
      throw new OciError('UNAUTHORIZED', `${subject}: refused ${who} for ${scopeStrings.join(' ')} (HTTP ${response.status})`, credentialsHint(this.#registry));
    }
    if (response.status !== 200) throw registryError(response.status, Buffer.from(response.body).toString('utf8'), subject, this.#registry, 'REGISTRY_ERROR');
    let answer: { token?: unknown; access_token?: unknown; expires_in?: unknown; issued_at?: unknown };
    try {
      answer = JSON.parse(Buffer.from(response.body).toString('utf8')) as typeof answer;
    } catch (error) {
      throw new OciError('REGISTRY_ERROR', `${subject}: the token answer is not JSON`, undefined, { cause: error });
    }
    const token = typeof answer.token === 'string' && answer.token !== '' ? answer.token : answer.access_token;
    if (typeof token !== 'string' || token === '') throw new OciError('REGISTRY_ERROR', `${subject}: the token answer has no token`);
    const lifetimeMs = (typeof answer.expires_in === 'number' && answer.expires_in > 0 ? answer.expires_in : 60) * 1000;
    const issuedAt = typeof answer.issued_at === 'string' && !Number.isNaN(Date.parse(answer.issued_at)) ? Math.min(Date.parse(answer.issued_at), Date.now()) : Date.now();
    return { token, expiresAt: issuedAt + lifetimeMs - Math.min(expiryMarginMs, lifetimeMs / 2) };
  }
}
