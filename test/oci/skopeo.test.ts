/** Interoperability: images made by restack's LayoutStore, copied by skopeo, read back by restack's stores. */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import { LayoutStore } from '../../src/oci/layout.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import { readImage } from '../../src/oci/open.ts';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { makeImage, makeIndex, makeLayer, validateImage, writeImage, writeIndex, type BuiltImage } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { requireProgram } from '../services/service.ts';

async function start(): Promise<{ registry: RunningRegistry; skopeo: string }> {
  const skopeo = await requireProgram('skopeo', 'skopeo');
  return { registry: await startRegistry(), skopeo };
}

const { service, skip } = await startOrSkip(start);
const scratch = await mkdtemp(join(tmpdir(), 'restack-skopeo-'));
after(async () => {
  await service?.registry.stop();
  await rm(scratch, { recursive: true, force: true });
});

async function skopeoCopy(...args: string[]): Promise<void> {
  await execa(service!.skopeo, ['copy', '--quiet', '--src-tls-verify=false', '--dest-tls-verify=false', ...args]);
}

async function layoutWith(name: string, image: BuiltImage, tag: string): Promise<string> {
  const dir = join(scratch, name);
  await writeImage(new LayoutStore(dir), '', image, tag);
  return dir;
}

describe('skopeo and restack stores agree', { skip }, () => {
  const registryStore = () => new RegistryStore(service!.registry.host, { credentials: async () => undefined });

  test('an OCI image from a restack layout, pushed by skopeo, reads back identical', async () => {
    const image = makeImage({ layers: [await makeLayer({ 'etc/motd': 'hi\n' }), await makeLayer({ 'opt/app/run': '#!/bin/sh\n' })], annotations: { 'org.opencontainers.image.source': 'test' } });
    const dir = await layoutWith('oci', image, 'v1');
    await skopeoCopy(`oci:${dir}:v1`, `docker://${service!.registry.host}/skopeo/oci:v1`);
    const read = await validateImage(registryStore(), 'skopeo/oci', 'v1');
    assert.equal(read.manifestDescriptor.mediaType, MediaType.ociManifest);
    assert.deepEqual(read.manifest.layers.map((layer) => layer.digest), image.manifest.layers.map((layer) => layer.digest));
    assert.deepEqual(read.config.rootfs.diff_ids, image.config.rootfs.diff_ids);
  });

  test('converted to Docker schema2 by skopeo (--format v2s2), it reads back with Docker media types', async () => {
    const image = makeImage({ layers: [await makeLayer({ 'etc/motd': 'docker\n' })] });
    const dir = await layoutWith('v2s2', image, 'v1');
    await skopeoCopy('--format', 'v2s2', `oci:${dir}:v1`, `docker://${service!.registry.host}/skopeo/v2s2:v1`);
    const store = registryStore();
    assert.equal((await store.resolve('skopeo/v2s2', 'v1')).mediaType, MediaType.dockerManifest);
    const read = await validateImage(store, 'skopeo/v2s2', 'v1');
    assert.equal(read.manifest.config.mediaType, MediaType.dockerConfig);
    assert.deepEqual(read.manifest.layers.map((layer) => layer.mediaType), [MediaType.dockerLayerGzip]);
    assert.deepEqual(read.config.rootfs.diff_ids, image.config.rootfs.diff_ids);
  });

  test('a multi-platform index pushed by skopeo --all: restack picks the platform', async () => {
    const amd64 = makeImage({ layers: [await makeLayer({ arch: 'amd64' })] });
    const arm64 = makeImage({ architecture: 'arm64', variant: 'v8', layers: [await makeLayer({ arch: 'arm64' })] });
    const dir = join(scratch, 'multi');
    await writeIndex(new LayoutStore(dir), '', [amd64, arm64], makeIndex([amd64, arm64]), 'v1');
    await skopeoCopy('--all', `oci:${dir}:v1`, `docker://${service!.registry.host}/skopeo/multi:v1`);
    const store = registryStore();
    assert.equal((await readImage(store, 'skopeo/multi', 'v1', { os: 'linux', architecture: 'arm64' })).manifestDescriptor.digest, arm64.manifestDescriptor.digest);
    assert.equal((await readImage(store, 'skopeo/multi', 'v1', { os: 'linux', architecture: 'amd64' })).manifestDescriptor.digest, amd64.manifestDescriptor.digest);
  });

  test('a layout written by skopeo from the registry is read by LayoutStore', async () => {
    const dir = join(scratch, 'from-registry');
    await skopeoCopy(`docker://${service!.registry.host}/skopeo/v2s2:v1`, `oci:${dir}:copied`);
    const layout = new LayoutStore(dir);
    assert.deepEqual(await layout.listTags(''), ['copied']);
    const read = await validateImage(layout, '', 'copied');
    assert.equal(read.manifestDescriptor.mediaType, MediaType.ociManifest);
  });
});
