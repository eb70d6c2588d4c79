import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OciError } from '../../src/oci/errors.ts';
import { credentialFromEntry, credHelperFor, findAuthEntry, helperServerUrl, parseDockerConfig, refuseCredentialHelpers, splitRegistryKey } from '../../src/oci/registry/credentials.ts';
import { credentialFilePaths } from '../../src/oci/registry/credential-provider.ts';

const auth = (user: string, password: string) => ({ auth: Buffer.from(`${user}:${password}`).toString('base64') });

test('Docker Hub is found under any of its names, the v1 index URL included', () => {
  const config = parseDockerConfig(JSON.stringify({ auths: { 'https://index.docker.io/v1/': auth('hub', 'pw') } }), 'config.json');
  assert.equal(findAuthEntry(config, 'registry-1.docker.io', 'library/centos')?.key, 'https://index.docker.io/v1/');
  assert.deepEqual(splitRegistryKey('docker.io'), { host: 'registry-1.docker.io', path: '' });
  assert.equal(helperServerUrl('registry-1.docker.io'), 'https://index.docker.io/v1/');
});

test('keys match host and port, and the most specific path wins', () => {
  const config = parseDockerConfig(
    JSON.stringify({
      auths: {
        'reg.example:5000': auth('any', '1'),
        'reg.example:5000/team': auth('team', '2'),
        'https://reg.example:5000/team/app': auth('app', '3'),
        'reg.example': auth('otherport', '4'),
      },
    }),
    'auth.json',
  );
  const user = (repository: string) => credentialFromEntry(findAuthEntry(config, 'reg.example:5000', repository)!.entry, 'x')?.username;
  assert.equal(user('team/app'), 'app');
  assert.equal(user('team/app2'), 'team');
  assert.equal(user('team'), 'team');
  assert.equal(user('other'), 'any');
  assert.equal(findAuthEntry(config, 'reg.example:6000', 'team'), undefined);
});

test('a Kubernetes .dockercfg (the auths map alone) and username/password/identitytoken entries', () => {
  const legacy = parseDockerConfig(JSON.stringify({ 'reg.example': { ...auth('old', 'pw'), email: 'x@example.com' } }), 'secret');
  assert.deepEqual(credentialFromEntry(findAuthEntry(legacy, 'reg.example', 'a')!.entry, 'x'), { username: 'old', password: 'pw' });
  assert.deepEqual(credentialFromEntry({ username: 'u', password: 'p:with:colons' }, 'x'), { username: 'u', password: 'p:with:colons' });
  assert.deepEqual(credentialFromEntry({ ...auth('u', 'a:b'), identitytoken: 'refresh' }, 'x'), { username: 'u', password: 'a:b', identityToken: 'refresh' });
  assert.equal(credentialFromEntry({}, 'x'), undefined);
});

test('broken configs name the file and the field', () => {
  assert.throws(() => parseDockerConfig('{', '/home/u/.docker/config.json'), (error: unknown) => error instanceof OciError && error.code === 'CREDENTIALS_INVALID' && /config\.json: not valid JSON/.test(error.message));
  assert.throws(
    () => credentialFromEntry({ auth: Buffer.from('nocolon').toString('base64') }, 'auth.json: auths["reg"]'),
    (error: unknown) => error instanceof OciError && /auths\["reg"\]\.auth/.test(error.message),
  );
  assert.throws(() => parseDockerConfig(JSON.stringify({ auths: { reg: { auth: 5 } } }), 'c'), (error: unknown) => error instanceof OciError && /auths\.reg\.auth/.test(error.message));
});

test('credHelpers are chosen per host; files are searched where podman and docker keep them', () => {
  const config = parseDockerConfig(JSON.stringify({ credHelpers: { 'reg.example:5000': 'pass' }, credsStore: 'desktop' }), 'c');
  assert.equal(credHelperFor(config, 'reg.example:5000'), 'pass');
  assert.equal(credHelperFor(config, 'reg.example'), undefined);
  assert.deepEqual(credentialFilePaths({ REGISTRY_AUTH_FILE: '/a.json', XDG_RUNTIME_DIR: '/run/u', DOCKER_CONFIG: '/d', HOME: '/h' }), ['/a.json', '/run/u/containers/auth.json', '/d/config.json']);
  assert.deepEqual(credentialFilePaths({ HOME: '/h' }), ['/h/.docker/config.json']);
});

test('a config whose reader must not run programs it names: credHelpers and credsStore are refused, each named; auths alone pass', () => {
  const refuse = (config: object) => () => refuseCredentialHelpers(parseDockerConfig(JSON.stringify(config), 'Secret team/regcred'), 'Secret team/regcred');
  assert.throws(refuse({ auths: { 'reg.example': auth('u', 'p') }, credsStore: 'desktop', credHelpers: { 'reg.example': 'ecr-login' } }), (error: unknown) => {
    assert.ok(error instanceof OciError);
    assert.equal(error.code, 'CREDENTIALS_INVALID');
    assert.equal(error.message, 'Secret team/regcred: names credential helper programs, which are not run for it: credHelpers["reg.example"] (docker-credential-ecr-login), credsStore (docker-credential-desktop)');
    return true;
  });
  assert.doesNotThrow(refuse({ auths: { 'reg.example': auth('u', 'p') }, credsStore: '' }));
});
