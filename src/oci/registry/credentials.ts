import { z } from 'zod';
import { OciError } from '../errors.ts';
import { dockerHubRegistry } from '../reference.ts';

/** What a registry login yields: a user and password, or a token standing for them. */
export interface Credential {
  username?: string;
  password?: string;
  /** An OAuth2 refresh token (docker config `identitytoken`), exchanged at the token service. */
  identityToken?: string;
  /** A bearer token sent as is (docker config `registrytoken`). */
  registryToken?: string;
}

const authEntrySchema = z.looseObject({
  auth: z.string().optional(),
  username: z.string().optional(),
  password: z.string().optional(),
  identitytoken: z.string().optional(),
  registrytoken: z.string().optional(),
});
type AuthEntry = z.infer<typeof authEntrySchema>;

const dockerConfigSchema = z.looseObject({
  auths: z.record(z.string(), authEntrySchema).optional(),
  credHelpers: z.record(z.string(), z.string()).optional(),
  credsStore: z.string().optional(),
});
export type DockerConfig = z.infer<typeof dockerConfigSchema>;

const configHint = 'a docker config holds {"auths": {"HOST": {"auth": "<base64 user:password>"}}}';

/**
 * Parses a docker `config.json`, a containers `auth.json`, the `.dockerconfigjson` key of a
 * Kubernetes `kubernetes.io/dockerconfigjson` secret (same format), or a legacy `.dockercfg`
 * (the `auths` map alone).
 */
export function parseDockerConfig(text: string, source: string): DockerConfig {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new OciError('CREDENTIALS_INVALID', `${source}: not valid JSON`, configHint, { cause: error });
  }
  const isLegacy = typeof json === 'object' && json !== null && !('auths' in json) && !('credHelpers' in json) && !('credsStore' in json)
    && Object.values(json).every((value) => typeof value === 'object' && value !== null);
  const parsed = dockerConfigSchema.safeParse(isLegacy ? { auths: json } : json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new OciError('CREDENTIALS_INVALID', `${source}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`, configHint);
  }
  return parsed.data;
}

const dockerHubAliases = new Set([dockerHubRegistry, 'docker.io', 'index.docker.io']);

/** The host a config key names (scheme and path dropped, Docker Hub's aliases unified) and its path. */
export function splitRegistryKey(key: string): { host: string; path: string } {
  const bare = key.replace(/^[a-z][a-z0-9+.-]*:\/\//i, '').replace(/\/+$/, '');
  const slash = bare.indexOf('/');
  const host = (slash < 0 ? bare : bare.slice(0, slash)).toLowerCase();
  const path = slash < 0 ? '' : bare.slice(slash + 1);
  if (dockerHubAliases.has(host)) return { host: dockerHubRegistry, path: path === 'v1' || path === 'v2' ? '' : path };
  return { host, path };
}

/** A path scope applies to a repository equal to it or below it. */
function coversRepository(path: string, repository: string): boolean {
  return path === '' || repository === path || repository.startsWith(`${path}/`);
}

/** The `auths` entry for a registry and repository: the host must match, the most specific path wins. */
export function findAuthEntry(config: DockerConfig, registry: string, repository: string): { key: string; entry: AuthEntry } | undefined {
  const wanted = splitRegistryKey(registry).host;
  let best: { key: string; entry: AuthEntry; pathLength: number } | undefined;
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    const { host, path } = splitRegistryKey(key);
    if (host !== wanted || !coversRepository(path, repository)) continue;
    if (best === undefined || path.length > best.pathLength) best = { key, entry, pathLength: path.length };
  }
  return best === undefined ? undefined : { key: best.key, entry: best.entry };
}

/** The credential an `auths` entry holds, or undefined for an empty marker entry (credentials kept by a helper). */
export function credentialFromEntry(entry: AuthEntry, where: string): Credential | undefined {
  const credential: Credential = {};
  if (entry.auth !== undefined && entry.auth !== '') {
    const decoded = Buffer.from(entry.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon < 0) {
      throw new OciError('CREDENTIALS_INVALID', `${where}.auth: does not decode to "user:password"`, 'set auth to base64("user:password"), as `docker login` writes it');
    }
    credential.username = decoded.slice(0, colon);
    credential.password = decoded.slice(colon + 1);
  }
  if (entry.username !== undefined && entry.username !== '') credential.username = entry.username;
  if (entry.password !== undefined && entry.password !== '') credential.password = entry.password;
  if (entry.identitytoken !== undefined && entry.identitytoken !== '') credential.identityToken = entry.identitytoken;
  if (entry.registrytoken !== undefined && entry.registrytoken !== '') credential.registryToken = entry.registrytoken;
  return Object.keys(credential).length === 0 ? undefined : credential;
}

/** The credential helper named for a registry: a `credHelpers` entry for its host. */
export function credHelperFor(config: DockerConfig, registry: string): string | undefined {
  const wanted = splitRegistryKey(registry).host;
  for (const [key, helper] of Object.entries(config.credHelpers ?? {})) {
    if (splitRegistryKey(key).host === wanted) return helper;
  }
  return undefined;
}

/**
 * Refuses a config that names credential helper programs (`credHelpers`, `credsStore`): for a
 * config from someone who must not choose what the reader executes, such as a tenant's Secret read
 * by the operator. The reader's own config files may still name helpers.
 */
export function refuseCredentialHelpers(config: DockerConfig, source: string): void {
  const named = [
    ...Object.entries(config.credHelpers ?? {}).map(([host, helper]) => `credHelpers["${host}"] (docker-credential-${helper})`),
    ...(config.credsStore === undefined || config.credsStore === '' ? [] : [`credsStore (docker-credential-${config.credsStore})`]),
  ];
  if (named.length === 0) return;
  throw new OciError(
    'CREDENTIALS_INVALID',
    `${source}: names credential helper programs, which are not run for it: ${named.join(', ')}`,
    'put the login itself in "auths": {"HOST": {"auth": "<base64 user:password>"}}, as kubectl create secret docker-registry NAME --docker-server=HOST --docker-username=USER --docker-password=PASSWORD writes it',
  );
}

/** The server URL helpers are asked about: Docker Hub is known to them by its v1 index URL. */
export function helperServerUrl(registry: string): string {
  return splitRegistryKey(registry).host === dockerHubRegistry ? 'https://index.docker.io/v1/' : registry;
}
