import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { composeToStore } from '../../src/engine/compose.ts';
import { inspectImage } from '../../src/engine/inspect.ts';
import { LayerChangesCache } from '../../src/engine/layer-changes.ts';
import { swapDependency } from '../../src/engine/swap.ts';
import { sha256Digest } from '../../src/oci/digest.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import type { Descriptor, ImageIndex } from '../../src/oci/types.ts';
import { restack } from '../cli/restack.ts';
import { startFaultyProxy } from '../services/faulty-proxy.ts';
import { makeImage, makeIndex, makeLayer, validateImage, writeIndex, type BuiltLayer } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered, pushSeeds } from './seeds.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());
const architectures = ['amd64', 'arm64'] as const;

/** Pushes an index with one image per architecture, each `layers(arch)`. */
async function pushIndex(ref: string, layers: (arch: string) => BuiltLayer[]): Promise<void> {
  const target = open(ref);
  const images = architectures.map((architecture) => makeImage({ layers: layers(architecture), architecture }));
  const attestation: Descriptor = { ...images[0]!.manifestDescriptor, platform: { os: 'unknown', architecture: 'unknown' } };
  const withPlatforms = images.map((image, i) => ({ ...image, manifestDescriptor: { ...image.manifestDescriptor, platform: { os: 'linux', architecture: architectures[i]! } } }));
  await writeIndex(target.store, target.repository, withPlatforms, makeIndex(withPlatforms, [attestation]), 'latest');
}

describe('swap of multi-platform images and through a misbehaving registry', { skip }, () => {
  const running = registry as RunningRegistry;
  after(() => running.stop());

  /** base, ssl and python3 as two-platform indexes, A composed per platform into an index of its own (plus `extra` children), python3 then bumped. */
  async function multiPlatformA(prefix: string, extra: (children: Descriptor[]) => Promise<Descriptor[]> = async () => []) {
    const layer = async (text: string) => makeLayer({ [`etc/${text.replaceAll(' ', '-')}`]: text });
    const bases = { amd64: await layer('base amd64'), arm64: await layer('base arm64') } as Record<string, BuiltLayer>;
    const ssl = { amd64: await layer('ssl amd64'), arm64: await layer('ssl arm64') } as Record<string, BuiltLayer>;
    const py = { amd64: await layer('py amd64'), arm64: await layer('py arm64') } as Record<string, BuiltLayer>;
    const py2 = { amd64: await layer('py2 amd64'), arm64: await layer('py2 arm64') } as Record<string, BuiltLayer>;
    await pushIndex(`${prefix}/base:latest`, (arch) => [bases[arch]!]);
    await pushIndex(`${prefix}/ssl:latest`, (arch) => [bases[arch]!, ssl[arch]!]);
    await pushIndex(`${prefix}/python3:latest`, (arch) => [bases[arch]!, py[arch]!]);
    const children: Descriptor[] = [];
    for (const architecture of architectures) {
      const outcome = await composeToStore({
        base: open(`${prefix}/base:latest`),
        applied: [open(`${prefix}/ssl:latest`), open(`${prefix}/python3:latest`)],
        target: open(`${prefix}/a:${architecture}`),
        platform: { os: 'linux', architecture },
      });
      const a = await inspectImage(open(`${prefix}/a:${architecture}`));
      children.push({ mediaType: a.mediaType, digest: outcome.digest, size: 0, platform: { os: 'linux', architecture } });
    }
    const target = open(`${prefix}/a:latest`);
    for (const child of children) child.size = (await target.store.resolve(target.repository, child.digest)).size;
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [...children, ...(await extra(children))] };
    const indexBytes = new TextEncoder().encode(JSON.stringify(index));
    await target.store.tag(target.repository, 'latest', await target.store.putManifest(target.repository, indexBytes, MediaType.ociIndex));
    await pushIndex(`${prefix}/python3:latest`, (arch) => [bases[arch]!, py2[arch]!]);
    return { bases, ssl, py2, children, indexBytes };
  }

  test('a two-platform A is swapped platform by platform: children first, then the index', async () => {
    const prefix = `docker://${running.host}/multi`;
    const { bases, ssl, py2, indexBytes } = await multiPlatformA(prefix);
    const target = open(`${prefix}/a:latest`);
    const outcome = await swapDependency({ target: open(`${prefix}/a:latest`), dependency: open(`${prefix}/python3:latest`), layerChanges: new LayerChangesCache() });
    assert.equal(outcome.status, 'swapped', outcome.refusal?.message);
    assert.equal(outcome.platforms.length, 2);
    const swapped = await inspectImage(open(`${prefix}/a:latest`));
    assert.equal(swapped.digest, outcome.after);
    assert.notEqual(swapped.digest, sha256Digest(indexBytes));
    for (const platform of swapped.platforms) {
      const arch = platform.platform.split('/')[1]!;
      assert.deepEqual(platform.layers.map((l) => l.digest), [bases[arch]!, ssl[arch]!, py2[arch]!].map((l) => l.descriptor.digest));
      await validateImage(target.store, target.repository, platform.digest);
    }
  });

  test("attestations of a replaced platform image are dropped, other children kept; an artifact without a platform is not read as an image", async () => {
    const prefix = `docker://${running.host}/attested`;
    const target = open(`${prefix}/a:latest`);
    const artifact = async (artifactType: string, content: string, annotations: Record<string, string> = {}, platform?: Descriptor['platform']): Promise<Descriptor> => {
      const empty = new TextEncoder().encode('{}');
      const body = new TextEncoder().encode(content);
      const config = { mediaType: MediaType.ociEmpty, digest: sha256Digest(empty), size: empty.length };
      const layer = { mediaType: artifactType, digest: sha256Digest(body), size: body.length };
      await target.store.putBlob(target.repository, config, empty);
      await target.store.putBlob(target.repository, layer, body);
      const bytes = new TextEncoder().encode(JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, artifactType, config, layers: [layer] }));
      const descriptor = await target.store.putManifest(target.repository, bytes, MediaType.ociManifest);
      return { ...descriptor, annotations, ...(platform === undefined ? {} : { platform }) };
    };
    let sbom: Descriptor | undefined;
    let loose: Descriptor | undefined;
    await multiPlatformA(prefix, async (children) => {
      sbom = await artifact('application/vnd.in-toto+json', 'sbom of amd64', { 'vnd.docker.reference.type': 'attestation-manifest', 'vnd.docker.reference.digest': children[0]!.digest }, { os: 'unknown', architecture: 'unknown' });
      loose = await artifact('application/spdx+json', 'an SBOM listed without a platform');
      return [sbom, loose];
    });
    const outcome = await swapDependency({ target, dependency: open(`${prefix}/python3:latest`), layerChanges: new LayerChangesCache() });
    assert.equal(outcome.status, 'swapped', outcome.refusal?.message);
    const index = (await target.store.getManifest(target.repository, 'latest')).manifest as ImageIndex;
    const digests = index.manifests.map((child) => child.digest);
    assert.ok(!digests.includes(sbom!.digest), "the replaced image's attestation is dropped");
    assert.ok(digests.includes(loose!.digest), 'other children are kept');
    assert.equal(index.manifests.length, 3);
  });

  test('images pushed by skopeo (OCI and Docker schema2) work as inputs', async () => {
    const prefix = `docker://${running.host}/skopeo`;
    const seeds = await pushSeeds(prefix);
    const python3v2 = await makeLayer({ 'usr/bin/python3': 'python 3.12 via skopeo\n' });
    const layout = await mkdtemp(join(tmpdir(), 'restack-skopeo-'));
    const staging = open(`oci:${layout}:python3`);
    const image = makeImage({ layers: [seeds.base, python3v2] });
    for (const blob of image.blobs) await staging.store.putBlob('', blob.descriptor, blob.bytes);
    await staging.store.tag('', 'python3', await staging.store.putManifest('', image.manifestBytes, image.manifestDescriptor.mediaType));
    for (const format of ['oci', 'v2s2']) {
      await execa('skopeo', ['copy', '--dest-tls-verify=false', '--format', format, `oci:${layout}:python3`, `docker://${running.host}/skopeo/python3:latest`]);
      const result = await restack(['swap', `${prefix}/a:latest`, '--dependency', `${prefix}/python3:latest`, '--json']);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.match(result.stdout, /"status": "(swapped|up-to-date)"/);
    }
    const a = await inspectImage(open(`${prefix}/a:latest`));
    assert.equal(a.platforms[0]?.layers[2]?.digest, python3v2.descriptor.digest);
    assert.equal(a.mediaType, MediaType.ociManifest, "A keeps its own format whatever the dependency's");
  });

  test('a lying registry (a config whose bytes do not match) fails the swap and changes nothing', async () => {
    const prefix = `docker://${running.host}/lying`;
    const seeds = await pushSeeds(prefix);
    await pushLayered(prefix, 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'v2' })]);
    const proxy = await startFaultyProxy(running.url);
    try {
      proxy.inject({ method: 'GET', path: /\/lying\/python3\/blobs\//, fault: { kind: 'substitute', body: (original) => Buffer.from(original.map((byte, index) => (index === 0 ? byte ^ 1 : byte))) } });
      const result = await restack(['swap', `docker://${proxy.host}/lying/a:latest`, '--dependency', `docker://${proxy.host}/lying/python3:latest`]);
      assert.equal(result.exitCode, 1);
      assert.match(result.stderr, /does not match its digest|DIGEST_MISMATCH/);
      assert.equal((await inspectImage(open(`${prefix}/a:latest`))).digest, seeds.a);
    } finally {
      await proxy.stop();
    }
  });

  test('a truncated blob fails the swap with a clear error and changes nothing', async () => {
    const prefix = `docker://${running.host}/truncated`;
    const seeds = await pushSeeds(prefix);
    await pushLayered(prefix, 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'v2' })]);
    const proxy = await startFaultyProxy(running.url);
    try {
      proxy.inject({ method: 'GET', path: /\/truncated\/a\/blobs\//, fault: { kind: 'truncate', keepBytes: 10 } });
      const result = await restack(['swap', `docker://${proxy.host}/truncated/a:latest`, '--dependency', `docker://${proxy.host}/truncated/python3:latest`]);
      assert.notEqual(result.exitCode, 0);
      assert.match(result.stderr, /^error: /m);
      assert.doesNotMatch(result.stderr, /internal error/);
      assert.equal((await inspectImage(open(`${prefix}/a:latest`))).digest, seeds.a);
    } finally {
      await proxy.stop();
    }
  });

  test('a registry that answers 500 three times, then accepts, gets the swap done', async () => {
    const prefix = `docker://${running.host}/flaky`;
    const seeds = await pushSeeds(prefix);
    await pushLayered(prefix, 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'v2' })]);
    const proxy = await startFaultyProxy(running.url);
    try {
      proxy.inject({ method: 'PUT', path: /\/flaky\/a\/manifests\//, times: 3, fault: { kind: 'status', status: 500, body: '{"errors":[{"code":"UNKNOWN","message":"try again"}]}' } });
      const result = await restack(['swap', `docker://${proxy.host}/flaky/a:latest`, '--dependency', `docker://${proxy.host}/flaky/python3:latest`, '--json']);
      assert.equal(result.exitCode, 0, result.stderr);
      assert.equal(proxy.requests.filter((request) => request.outcome === 500).length, 3);
      assert.notEqual((await inspectImage(open(`${prefix}/a:latest`))).digest, seeds.a);
    } finally {
      await proxy.stop();
    }
  });
});

describe('swap with wrong credentials', { skip }, () => {
  test('a 401 names the registry and says to check the credentials; nothing changes', async () => {
    const secured = await startRegistry({ htpasswd: { restack: 'right' } });
    try {
      const dir = await mkdtemp(join(tmpdir(), 'restack-auth-'));
      const authfile = join(dir, 'auth.json');
      const { writeFile } = await import('node:fs/promises');
      await writeFile(authfile, JSON.stringify({ auths: { [secured.host]: { auth: Buffer.from('restack:wrong').toString('base64') } } }));
      const result = await restack(['swap', `docker://${secured.host}/x/a:latest`, '--dependency', `docker://${secured.host}/x/python3:latest`, '--authfile', authfile]);
      assert.equal(result.exitCode, 1);
      assert.match(result.stderr, /UNAUTHORIZED|credentials/i);
      assert.match(result.stderr, new RegExp(secured.host.replace(/\./g, '\\.')));
    } finally {
      await secured.stop();
    }
  });
});
