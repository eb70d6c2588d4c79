import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { OciError } from '../errors.ts';
import { fileVersion } from '../file-version.ts';
import { runCredentialHelper } from './credential-helper.ts';
import { credentialFromEntry, credHelperFor, findAuthEntry, helperServerUrl, parseDockerConfig, type Credential, type DockerConfig } from './credentials.ts';

/** Finds the credential for a repository of a registry; undefined means anonymous. */
export type CredentialProvider = (registry: string, repository: string) => Promise<Credential | undefined>;

export const anonymous: CredentialProvider = async () => undefined;

/**
 * Credentials from one parsed docker config: a `credHelpers` entry for the host first, then
 * the `auths` entry (most specific path first), then the `credsStore` helper.
 */
export function credentialsFromConfig(config: DockerConfig, source: string, env: NodeJS.ProcessEnv = process.env): CredentialProvider {
  return async (registry, repository) => {
    const helper = credHelperFor(config, registry);
    if (helper !== undefined) return runCredentialHelper(helper, helperServerUrl(registry), env);
    const found = findAuthEntry(config, registry, repository);
    const credential = found === undefined ? undefined : credentialFromEntry(found.entry, `${source}: auths["${found.key}"]`);
    if (credential !== undefined) return credential;
    if (config.credsStore !== undefined && config.credsStore !== '') return runCredentialHelper(config.credsStore, helperServerUrl(registry), env);
    return undefined;
  };
}

/** Credentials from docker config JSON text, such as a `kubernetes.io/dockerconfigjson` secret's `.dockerconfigjson`. */
export function credentialsFromDockerConfigJson(text: string, source = 'docker config', env: NodeJS.ProcessEnv = process.env): CredentialProvider {
  return credentialsFromConfig(parseDockerConfig(text, source), source, env);
}

/** The first provider that knows a credential wins. */
export function chainCredentials(...providers: CredentialProvider[]): CredentialProvider {
  return async (registry, repository) => {
    for (const provider of providers) {
      const credential = await provider(registry, repository);
      if (credential !== undefined) return credential;
    }
    return undefined;
  };
}

/** Where tools keep logins, in the order skopeo/podman and docker look. */
export function credentialFilePaths(env: NodeJS.ProcessEnv = process.env): string[] {
  const paths: string[] = [];
  if (env['REGISTRY_AUTH_FILE']) paths.push(env['REGISTRY_AUTH_FILE']);
  if (env['XDG_RUNTIME_DIR']) paths.push(join(env['XDG_RUNTIME_DIR'], 'containers', 'auth.json'));
  paths.push(join(env['DOCKER_CONFIG'] || join(env['HOME'] || homedir(), '.docker'), 'config.json'));
  return paths;
}

/** Credentials from a docker config file named explicitly (`--authfile`): it must exist. */
export function credentialsFromFile(path: string, env: NodeJS.ProcessEnv = process.env): CredentialProvider {
  let loaded: Promise<CredentialProvider> | undefined;
  const load = async (): Promise<CredentialProvider> => {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new OciError('CREDENTIALS_INVALID', `auth file ${path}: cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`, 'name an existing docker config.json, or leave the option out to use the default locations', { cause: error });
    }
    return credentialsFromDockerConfigJson(text, path, env);
  };
  return async (registry, repository) => {
    loaded ??= load();
    return (await loaded)(registry, repository);
  };
}

/**
 * Credentials from the files the environment names; files that do not exist are skipped. A
 * long-running process (the operator) sees a rotated login or Secret: the files are looked at
 * again at most every `recheckMs`, and read again when one changed.
 */
export function credentialsFromEnvironment(env: NodeJS.ProcessEnv = process.env, recheckMs = 10_000): CredentialProvider {
  const paths = credentialFilePaths(env);
  let loaded: { versions: string; provider: Promise<CredentialProvider> } | undefined;
  let checkedAt = -Infinity;
  const load = async (): Promise<CredentialProvider> => {
    const providers: CredentialProvider[] = [];
    for (const path of paths) {
      let text: string;
      try {
        text = await readFile(path, 'utf8');
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      providers.push(credentialsFromDockerConfigJson(text, path, env));
    }
    return chainCredentials(...providers);
  };
  const current = async (): Promise<CredentialProvider> => {
    if (loaded !== undefined && performance.now() - checkedAt < recheckMs) return loaded.provider;
    checkedAt = performance.now();
    const versions = (await Promise.all(paths.map(fileVersion))).join('\n');
    if (loaded?.versions !== versions) loaded = { versions, provider: load() };
    return loaded.provider;
  };
  return async (registry, repository) => (await current())(registry, repository);
}
