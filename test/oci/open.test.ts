import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { sha256Digest } from '../../src/oci/digest.ts';
import { OciError } from '../../src/oci/errors.ts';
import { LayoutStore } from '../../src/oci/layout.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import { openStore, readImage } from '../../src/oci/open.ts';
import { parseReference } from '../../src/oci/reference.ts';
import { credentialsFromFile } from '../../src/oci/registry/credential-provider.ts';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { makeImage, makeIndex, makeLayer, writeImage, writeIndex } from '../services/images.ts';

const scratch = await mkdtemp(join(tmpdir(), 'restack-open-'));
after(() => rm(scratch, { recursive: true, force: true }));
const isOciError = (code: string, pattern: RegExp = /./) => (error: unknown) => error instanceof OciError && error.code === code && pattern.test(error.message);

test('oci: opens a layout; the digest wins over the tag as the reference', () => {
  const digest = `sha256:${'b'.repeat(64)}`;
  const opened = openStore(parseReference(`oci:${scratch}/a:v1@${digest}`));
  assert.ok(opened.store instanceof LayoutStore);
  assert.equal(opened.repository, '');
  assert.equal(opened.reference, digest);
  assert.equal(openStore(parseReference(`oci:${scratch}/a`)).reference, 'latest');
});

test('docker:// opens one shared store per registry and settings', () => {
  const cache = new Map<string, RegistryStore>();
  const first = openStore(parseReference('docker://127.0.0.1:5999/team/a:v1'), { cache });
  const second = openStore(parseReference('docker://127.0.0.1:5999/team/b'), { cache });
  const other = openStore(parseReference('docker://127.0.0.1:5999/team/b'), { cache, insecure: false });
  assert.ok(first.store instanceof RegistryStore);
  assert.equal(first.store, second.store);
  assert.notEqual(first.store, other.store);
  assert.deepEqual([first.repository, first.reference, second.reference], ['team/a', 'v1', 'latest']);
});

test('an --authfile that does not exist is named when credentials are first needed', async () => {
  const missing = join(scratch, 'missing.json');
  await assert.rejects(credentialsFromFile(missing)('reg.example', 'a'), (error: unknown) => isOciError('CREDENTIALS_INVALID', new RegExp(`auth file ${missing}: cannot be read \\(ENOENT\\)`))(error));
});

test('readImage picks the platform from an index and parses the config', async () => {
  const store = new LayoutStore(join(scratch, 'index'));
  const amd64 = makeImage({ layers: [await makeLayer({ a: '1' })], config: { Env: ['A=1'] } });
  const arm64 = makeImage({ architecture: 'arm64', layers: [await makeLayer({ a: '2' })] });
  await writeIndex(store, '', [amd64, arm64], makeIndex([amd64, arm64]), 'v1');
  const image = await readImage(store, '', 'v1', { os: 'linux', architecture: 'amd64' });
  assert.equal(image.manifestDescriptor.digest, amd64.manifestDescriptor.digest);
  assert.deepEqual(image.manifestDescriptor.platform, { architecture: 'amd64', os: 'linux' });
  assert.deepEqual(image.config.config?.Env, ['A=1']);
  assert.deepEqual(Buffer.from(image.configBytes), Buffer.from(amd64.configBytes));
});

test('readImage refuses artifacts and malformed configs', async () => {
  const store = new LayoutStore(join(scratch, 'artifact'));
  const config = Buffer.from('{}');
  const artifactConfig = { mediaType: 'application/vnd.example.config+json', digest: sha256Digest(config), size: config.length };
  await store.putBlob('', artifactConfig, config);
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: artifactConfig, layers: [] }));
  await store.tag('', 'artifact', await store.putManifest('', manifest, MediaType.ociManifest));
  await assert.rejects(readImage(store, '', 'artifact'), isOciError('MANIFEST_UNSUPPORTED', /not a container image config/));

  const broken = makeImage({ layers: [] });
  const brokenConfig = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux' }));
  const configDescriptor = { mediaType: MediaType.ociConfig, digest: sha256Digest(brokenConfig), size: brokenConfig.length };
  await store.putBlob('', configDescriptor, brokenConfig);
  const brokenManifest = Buffer.from(JSON.stringify({ ...broken.manifest, config: configDescriptor }));
  await store.tag('', 'broken', await store.putManifest('', brokenManifest, MediaType.ociManifest));
  await assert.rejects(readImage(store, '', 'broken'), isOciError('CONFIG_INVALID', /rootfs/));
  await writeImage(store, '', broken, 'fine');
  assert.equal((await readImage(store, '', 'fine')).config.os, 'linux');
});
