/**
 * A bearer token service for docker-registry's `auth: token` mode: answers
 * `GET /token?service=&scope=...` with a JWT signed by a throwaway key whose self-signed
 * certificate the registry trusts (`rootcertbundle`). Anonymous callers get pull only; users
 * with the right Basic credentials get what they ask for; wrong credentials get 401.
 */
import { createPrivateKey, randomBytes, sign, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { requireProgram } from './service.ts';

export interface TokenServer {
  realm: string;
  service: string;
  issuer: string;
  /** The certificate the registry must trust. */
  rootCertBundle: string;
  /** The scopes of each token request, in order, and who asked. */
  issued: Array<{ user: string | undefined; scopes: string[] }>;
  stop: () => Promise<void>;
}

function base64url(data: string | Buffer): string {
  return Buffer.from(data).toString('base64url');
}

function jwt(key: KeyObject, certificate: X509Certificate, claims: Record<string, unknown>): string {
  const header = { typ: 'JWT', alg: 'RS256', x5c: [certificate.raw.toString('base64')] };
  const unsigned = `${base64url(JSON.stringify(header))}.${base64url(JSON.stringify(claims))}`;
  return `${unsigned}.${base64url(sign('sha256', Buffer.from(unsigned), key))}`;
}

/** `repository:name:pull,push` -> the JWT access claim; names may hold `host:port`, so split from the right. */
function accessOf(scope: string, allowed: (action: string) => boolean) {
  const last = scope.lastIndexOf(':');
  const first = scope.indexOf(':');
  return {
    type: scope.slice(0, first),
    name: scope.slice(first + 1, last),
    actions: scope.slice(last + 1).split(',').filter(allowed),
  };
}

export async function startTokenServer(users: Record<string, string>, options: { expiresInSeconds?: number } = {}): Promise<TokenServer> {
  const openssl = await requireProgram('openssl', 'openssl');
  const dir = await mkdtemp(join(tmpdir(), 'restack-token-'));
  const keyPath = join(dir, 'key.pem');
  const certPath = join(dir, 'cert.pem');
  await execa(openssl, ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=restack-test-token']);
  const key = createPrivateKey(await readFile(keyPath));
  const certificate = new X509Certificate(await readFile(certPath));
  const service = 'restack-test-registry';
  const issuer = 'restack-test-issuer';
  const issued: TokenServer['issued'] = [];

  const server = createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://token');
    const authorization = request.headers.authorization;
    let user: string | undefined;
    if (authorization?.startsWith('Basic ')) {
      const [name, ...rest] = Buffer.from(authorization.slice(6), 'base64').toString('utf8').split(':');
      if (name === undefined || users[name] !== rest.join(':')) {
        response.writeHead(401, { 'content-type': 'application/json' }).end('{"details":"wrong credentials"}');
        return;
      }
      user = name;
    }
    const scopes = url.searchParams.getAll('scope');
    issued.push({ user, scopes });
    const now = Math.floor(Date.now() / 1000);
    const expiresIn = options.expiresInSeconds ?? 300;
    const token = jwt(key, certificate, {
      iss: issuer,
      sub: user ?? '',
      aud: url.searchParams.get('service') ?? service,
      exp: now + expiresIn,
      nbf: now - 10,
      iat: now,
      jti: randomBytes(8).toString('hex'),
      access: scopes.map((scope) => accessOf(scope, (action) => user !== undefined || action === 'pull')),
    });
    response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: expiresIn, issued_at: new Date(now * 1000).toISOString() }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    service,
    issuer,
    rootCertBundle: certPath,
    issued,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await rm(dir, { recursive: true, force: true });
    },
  };
}
