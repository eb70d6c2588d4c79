/**
 * The registry build cache (--cache-repo): a build in a fresh directory (as a build pod starts)
 * takes every layer an earlier build published, with no container; an entry that does not verify
 * is ignored and the layer built; a cache that cannot be written never fails the build.
 */
import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { cacheConfigMediaType, cacheKeyAnnotation, cacheTag } from '../../src/engine/build/registry-cache.ts';
import { sha256Digest } from '../../src/oci/digest.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import { isIndex } from '../../src/oci/types.ts';
import { startFaultyProxy, type FaultyProxy } from '../services/faulty-proxy.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open } from '../swap/seeds.ts';
import { build, containersStarted, outputsOf, suiteDir, writeBusyboxTarball, type BuildRun } from './helpers.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

const recipe = [
  'base:',
  '  from: {type: tar, url: base.tar}',
  '  build_only: true',
  'tools:',
  '  from: {type: built, tag: base}',
  '  run: [mkdir -p /opt/tools, echo tools > /opt/tools/version]',
  'app:',
  '  from: {type: built, tag: tools}',
  '  run: [mkdir -p /srv, echo app > /srv/app]',
  '',
].join('\n');

function cacheSteps(run: BuildRun): Record<string, string> {
  return Object.fromEntries(run.events.flatMap((event) => (event.event === 'step' && event.step === 'cache' ? [[event.layer, event.message.split(' ').slice(0, -1).join(' ')]] : [])));
}

function warnings(run: BuildRun): string[] {
  return run.events.flatMap((event) => (event.event === 'warning' ? [event.message] : []));
}

describe('restack build --cache-repo against docker-registry', { skip }, () => {
  const running = registry as RunningRegistry;
  let dir: string;
  // Every request goes through a proxy that records it (and refuses some in the last test).
  let proxy: FaultyProxy;
  const cacheRepo = () => `docker://${proxy.host}/team/cache`;
  /** A build as a new build pod runs it: the same paths and push prefix, empty directories. */
  const buildFresh = async (cache: string) => {
    await rm(join(dir, 'oci'), { recursive: true, force: true });
    await rm(join(dir, 'roots'), { recursive: true, force: true });
    const args = ['-f', join(dir, 'stacker.yaml'), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots'), '--push', `docker://${proxy.host}/team`, '--cache-repo', cache];
    return build(args, { env: { SOURCE_DATE_EPOCH: '1700000000' } });
  };
  let first: BuildRun;

  before(async () => {
    proxy = await startFaultyProxy(running.url);
    dir = await suiteDir('restack-registry-cache-');
    await writeBusyboxTarball(join(dir, 'base.tar'));
    await writeFile(join(dir, 'stacker.yaml'), recipe);
    first = await buildFresh(cacheRepo());
  });
  after(async () => {
    await proxy.stop();
    await running.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('a first build runs every layer and publishes each to the cache repository', async () => {
    outputsOf(first);
    assert.deepEqual(containersStarted(first), ['tools', 'app']);
    assert.deepEqual(cacheSteps(first), { base: 'miss', tools: 'miss', app: 'miss' });
    const tags = await open(cacheRepo()).store.listTags('team/cache');
    assert.equal(tags.filter((tag) => tag.startsWith('restack-')).length, 3, tags.join(' '));
  });

  test('a build in a fresh directory takes every layer from the registry: no container, the same digests, its pushes mounted', async () => {
    proxy.requests.length = 0;
    const second = await buildFresh(cacheRepo());
    const outputs = outputsOf(second);
    assert.deepEqual(containersStarted(second), []);
    assert.deepEqual(cacheSteps(second), { base: 'hit (registry)', tools: 'hit (registry)', app: 'hit (registry)' });
    for (const [name, output] of outputsOf(first)) assert.equal(outputs.get(name)?.digest, output.digest, name);
    const pushed = open(`docker://${proxy.host}/team/app:latest`);
    const { manifest } = await pushed.store.getManifest(pushed.repository, 'latest');
    assert.equal(isIndex(manifest) ? 0 : manifest.layers.length, 3, 'base, tools and app layers pushed');
    // Each layer is mounted: app's own from the cache repository, the others from tools, pushed just before.
    const mounts = proxy.requests.filter((request) => request.method === 'POST' && request.path.startsWith('/v2/team/app/blobs/uploads/?mount='));
    assert.equal(mounts.length, 3, mounts.map((request) => request.path).join(' '));
    assert.ok(mounts.some((request) => request.path.endsWith('from=team%2Fcache')), mounts.map((request) => request.path).join(' '));
    const uploaded = proxy.requests.filter((request) => request.method === 'PUT' && request.path.startsWith('/v2/team/app/blobs/uploads/'));
    assert.equal(uploaded.length, 0, 'no blob bytes uploaded (the config is already there from the first build)');
  });

  test('an entry whose record gives a wrong diff_id is ignored with a warning, and the layer is built', async () => {
    const cache = open(cacheRepo());
    const tags = (await cache.store.listTags('team/cache')).filter((tag) => tag.startsWith('restack-'));
    // Poison every entry: the same blobs, records claiming another uncompressed content.
    for (const tag of tags) {
      const { manifest } = await cache.store.getManifest(cache.repository, tag);
      if (isIndex(manifest)) throw new Error('an index in the cache');
      const record = JSON.parse(Buffer.from(await cache.store.readBlob(cache.repository, manifest.config)).toString('utf8')) as { own: { diffId: string }[] };
      for (const own of record.own) own.diffId = sha256Digest(new TextEncoder().encode('something else'));
      const bytes = new TextEncoder().encode(JSON.stringify(record));
      const config = { mediaType: cacheConfigMediaType, size: bytes.length, digest: sha256Digest(bytes) };
      await cache.store.putBlob(cache.repository, config, bytes);
      const body = new TextEncoder().encode(JSON.stringify({ ...manifest, config, annotations: { [cacheKeyAnnotation]: manifest.annotations?.[cacheKeyAnnotation] } }));
      await cache.store.tag(cache.repository, tag, await cache.store.putManifest(cache.repository, body, MediaType.ociManifest));
    }
    const poisoned = await buildFresh(cacheRepo());
    const outputs = outputsOf(poisoned);
    assert.deepEqual(containersStarted(poisoned), ['tools', 'app']);
    assert.ok(warnings(poisoned).some((message) => /entry restack-[0-9a-f]{64} ignored: blob sha256:[0-9a-f]{64} uncompresses to sha256:[0-9a-f]{64}, not the diff_id/.test(message)), warnings(poisoned).join('\n'));
    for (const [name, output] of outputsOf(first)) assert.equal(outputs.get(name)?.digest, output.digest, `${name}: rebuilt to the same digest`);
    assert.equal(cacheTag('sha256:ab'), 'restack-ab');
  });

  test('a cache repository that refuses writes never fails the build', async () => {
    proxy.inject({ method: 'PUT', path: '/v2/team/denied/manifests/', fault: { kind: 'status', status: 403, body: '{"errors":[{"code":"DENIED","message":"read only"}]}' } });
    const run = await buildFresh(`docker://${proxy.host}/team/denied`);
    outputsOf(run);
    assert.ok(warnings(run).some((message) => /could not write restack-[0-9a-f]{64}: .*read only/.test(message)), warnings(run).join('\n'));
  });
});
