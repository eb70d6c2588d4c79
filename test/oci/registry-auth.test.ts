import assert from 'node:assert/strict';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { OciError } from '../../src/oci/errors.ts';
import { anonymous, credentialsFromDockerConfigJson, credentialsFromEnvironment, type CredentialProvider } from '../../src/oci/registry/credential-provider.ts';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { makeImage, makeLayer, validateImage, writeImage } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { startTokenServer } from '../services/token-server.ts';

const users = { alice: 'correct horse' };
const scratch = await mkdtemp(join(tmpdir(), 'restack-auth-'));
const basic = await startOrSkip(() => startRegistry({ htpasswd: users }));
const tokens = await startOrSkip(() => startTokenServer(users));
const bearer: { service?: RunningRegistry; skip?: string } = tokens.service === undefined ? { skip: tokens.skip ?? 'no token service' } : await startOrSkip(() => startRegistry({ token: tokens.service! }));
after(async () => {
  await basic.service?.stop();
  await bearer.service?.stop();
  await tokens.service?.stop();
  await rm(scratch, { recursive: true, force: true });
});

const dockerConfig = (host: string, user: string, password: string) => JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString('base64') } } });
const unauthorized = (pattern: RegExp) => (error: unknown) =>
  error instanceof OciError && error.code === 'UNAUTHORIZED' && pattern.test(error.message) && /check the credentials for/.test(error.hint ?? '');

async function pushAndRead(store: RegistryStore, repository: string): Promise<void> {
  const image = makeImage({ layers: [await makeLayer({ 'etc/who': repository })] });
  await writeImage(store, repository, image, 'v1');
  await validateImage(store, repository, 'v1');
}

describe('registry with htpasswd (plain Basic auth)', { skip: basic.skip }, () => {
  const host = () => basic.service!.host;
  const store = (credentials: CredentialProvider) => new RegistryStore(host(), { credentials });

  test('credentials from a dockerconfigjson secret push and pull', async () => {
    await pushAndRead(store(credentialsFromDockerConfigJson(dockerConfig(host(), 'alice', users.alice), 'secret regcred')), 'basic/secret');
  });

  test('wrong credentials are UNAUTHORIZED with a hint about credentials', async () => {
    const wrong = store(credentialsFromDockerConfigJson(dockerConfig(host(), 'alice', 'wrong')));
    await assert.rejects(wrong.resolve('basic/secret', 'v1'), unauthorized(new RegExp(`docker://${host()}/basic/secret:v1`)));
    await assert.rejects(store(anonymous).getManifest('basic/secret', 'v1'), unauthorized(/basic\/secret:v1/));
  });

  test('credentials from $REGISTRY_AUTH_FILE', async () => {
    const path = join(scratch, 'auth.json');
    await writeFile(path, dockerConfig(`http://${host()}`, 'alice', users.alice));
    await pushAndRead(store(credentialsFromEnvironment({ REGISTRY_AUTH_FILE: path, HOME: scratch })), 'basic/authfile');
  });

  test('a rotated $REGISTRY_AUTH_FILE is read again after a 401, by the same store', async () => {
    const path = join(scratch, 'rotating.json');
    await writeFile(path, dockerConfig(`http://${host()}`, 'alice', 'expired'));
    const rotating = store(credentialsFromEnvironment({ REGISTRY_AUTH_FILE: path, HOME: scratch }, 0));
    await assert.rejects(rotating.resolve('basic/rotated', 'v1'), unauthorized(/basic\/rotated:v1/));
    await writeFile(path, dockerConfig(`http://${host()}`, 'alice', users.alice));
    await pushAndRead(rotating, 'basic/rotated');
  });

  test('credentials from a docker-credential helper named in credHelpers', async () => {
    const bin = join(scratch, 'bin');
    const helper = join(bin, 'docker-credential-restacktest');
    await mkdir(bin, { recursive: true });
    await writeFile(
      helper,
      `#!/bin/sh\nread server\nif [ "$1" = get ] && [ "$server" = "${host()}" ]; then\n  echo '{"ServerURL":"${host()}","Username":"alice","Secret":"${users.alice}"}'\nelse\n  echo "credentials not found in native keychain"; exit 1\nfi\n`,
    );
    await chmod(helper, 0o755);
    const config = JSON.stringify({ credHelpers: { [host()]: 'restacktest' } });
    const env = { PATH: `${bin}:${process.env['PATH'] ?? ''}` };
    await pushAndRead(store(credentialsFromDockerConfigJson(config, 'config.json', env)), 'basic/helper');
    const missing = credentialsFromDockerConfigJson(JSON.stringify({ credsStore: 'not-installed' }), 'config.json', env);
    await assert.rejects(missing(host(), 'x'), (error: unknown) => error instanceof OciError && error.code === 'CREDENTIALS_INVALID' && /docker-credential-not-installed .* is not installed/.test(error.message));
  });
});

describe('registry with bearer tokens', { skip: bearer.skip }, () => {
  const host = () => bearer.service!.host;
  const issued = () => tokens.service!.issued;
  const alice = () => credentialsFromDockerConfigJson(dockerConfig(host(), 'alice', users.alice));

  test('Basic credentials buy tokens, cached and reused for lesser scopes', async () => {
    const store = new RegistryStore(host(), { credentials: alice() });
    const before = issued().length;
    await pushAndRead(store, 'bearer/app');
    const afterFirst = issued().slice(before);
    // The push token also serves the reads that follow.
    assert.deepEqual(afterFirst.map((entry) => [entry.user, entry.scopes]), [['alice', ['repository:bearer/app:pull,push']]]);
    await pushAndRead(store, 'bearer/app');
    assert.equal(issued().length, before + afterFirst.length, 'no new token for scopes already held');
  });

  test('the catalog is listed with a token for registry:catalog:*', async () => {
    const store = new RegistryStore(host(), { credentials: alice() });
    await pushAndRead(store, 'bearer/listed');
    const before = issued().length;
    assert.ok((await store.listRepositories()).includes('bearer/listed'));
    assert.deepEqual(issued().slice(before).map((entry) => [entry.user, entry.scopes]), [['alice', ['registry:catalog:*']]]);
  });

  test('anonymous tokens allow pulls; an anonymous push is UNAUTHORIZED', async () => {
    const store = new RegistryStore(host(), { credentials: anonymous });
    await validateImage(store, 'bearer/app', 'v1');
    assert.equal(issued().at(-1)?.user, undefined);
    const image = makeImage({ layers: [await makeLayer({ a: 'anonymous' })] });
    await assert.rejects(writeImage(store, 'bearer/anonymous', image, 'v1'), unauthorized(/bearer\/anonymous/));
  });

  test('wrong credentials are refused by the token service as UNAUTHORIZED', async () => {
    const store = new RegistryStore(host(), { credentials: credentialsFromDockerConfigJson(dockerConfig(host(), 'alice', 'wrong')) });
    await assert.rejects(store.resolve('bearer/app', 'v1'), unauthorized(/token service .* refused the credentials of user "alice"/));
  });

  test('a mount asks one token for push on the target and pull on the source', async () => {
    const store = new RegistryStore(host(), { credentials: alice() });
    const image = makeImage({ layers: [await makeLayer({ a: 'mounted' })] });
    await writeImage(store, 'bearer/source', image, 'v1');
    const layer = image.manifest.layers[0]!;
    assert.equal(await store.mountBlob('bearer/target', layer, 'bearer/source'), 'mounted');
    assert.deepEqual(issued().at(-1)?.scopes, ['repository:bearer/target:pull,push', 'repository:bearer/source:pull']);
  });
});
