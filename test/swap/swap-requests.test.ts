import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { inspectImage } from '../../src/engine/inspect.ts';
import { LayerChangesCache, listBlobChanges } from '../../src/engine/layer-changes.ts';
import { swapDependency } from '../../src/engine/swap.ts';
import { startFaultyProxy } from '../services/faulty-proxy.ts';
import { recordLayerChanges } from '../../src/swap/layer-record.ts';
import type { LayerEntry } from '../../src/swap/safety.ts';
import { makeLayer, validateImage, type BuiltLayer } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered, pushSeeds } from './seeds.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

/** The requests of a swap as `METHOD path` with digests and upload sessions shortened, in order. */
function shape(requests: { method: string; path: string }[]): string[] {
  return requests.map(({ method, path }) => `${method} ${path.replace(/sha256:[0-9a-f]{64}|sha256%3A[0-9a-f]{64}/g, 'D').replace(/uploads\/[0-9a-f-]{36}\?[^ ]*/, 'uploads/SESSION')}`);
}

const proxyStore = (prefix: string) => open(`${prefix}/a:latest`).store;

describe('what a swap asks of a registry', { skip }, () => {
  const running = registry as RunningRegistry;
  after(() => running.stop());

  test('one swap: the manifest is written once, by tag, after its blobs; the image is complete', async () => {
    const proxy = await startFaultyProxy(running.url);
    try {
      const prefix = `docker://${proxy.host}/requests`;
      const seeds = await pushSeeds(prefix);
      await pushLayered(prefix, 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'python 3.12\n' })]);
      const dependency = open(`${prefix}/python3:latest`);
      const layerChanges = new LayerChangesCache();
      // the dependency's old and new slices are listed once per fan-out, not per image
      await swapDependency({ target: open(`${prefix}/a:latest`), dependency, layerChanges, dryRun: true });
      proxy.clear();
      const outcome = await swapDependency({ target: open(`${prefix}/a:latest`), dependency, layerChanges });
      assert.equal(outcome.status, 'swapped', outcome.refusal?.message);
      const requests = shape(proxy.requests).filter((line) => !line.includes('/python3/'));
      assert.deepEqual(requests.slice(-3), ['POST /v2/requests/a/blobs/uploads/', 'PUT /v2/requests/a/blobs/uploads/SESSION', 'PUT /v2/requests/a/manifests/latest']);
      assert.equal(requests.filter((line) => line.startsWith('PUT /v2/requests/a/manifests/')).length, 1, 'one manifest PUT, by tag');
      assert.ok(requests.indexOf('POST /v2/requests/a/blobs/uploads/?mount=D&from=requests%2Fpython3') < requests.indexOf('PUT /v2/requests/a/manifests/latest'));
      const target = open(`${prefix}/a:latest`);
      await validateImage(target.store, target.repository, 'latest');
      assert.equal((await inspectImage(target)).digest, outcome.after);
    } finally {
      await proxy.stop();
    }
  });

  test('a manifest PUT by tag that fails leaves the tag on the old image; the swap repeated gives the same digest', async () => {
    const proxy = await startFaultyProxy(running.url);
    try {
      const prefix = `docker://${proxy.host}/crash`;
      const seeds = await pushSeeds(prefix);
      await pushLayered(prefix, 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'python 3.13\n' })]);
      const request = () => ({ target: open(`${prefix}/a:latest`), dependency: open(`${prefix}/python3:latest`), layerChanges: new LayerChangesCache() });
      proxy.inject({ method: 'PUT', path: '/v2/crash/a/manifests/latest', fault: { kind: 'status', status: 400, body: '{"errors":[{"code":"MANIFEST_INVALID","message":"refused"}]}' } });
      await assert.rejects(swapDependency(request()));
      assert.equal((await inspectImage(open(`${prefix}/a:latest`))).digest, seeds.a, 'the tag has not moved');
      proxy.clear();
      const planned = await swapDependency({ ...request(), dryRun: true });
      const outcome = await swapDependency(request());
      assert.equal(outcome.status, 'swapped', outcome.refusal?.message);
      assert.equal(outcome.after, planned.after);
      assert.equal((await inspectImage(open(`${prefix}/a:latest`))).digest, outcome.after);
    } finally {
      await proxy.stop();
    }
  });

  test('a layer of the new version that the image already has is not mounted again', async () => {
    const prefix = `docker://${running.host}/present`;
    const seeds = await pushSeeds(prefix);
    // python3 gains a second own layer above the one A already has
    const extra = await makeLayer({ 'usr/lib/python3/extra.py': 'x = 1\n' });
    await pushLayered(prefix, 'python3', [seeds.base, seeds.python3, extra]);
    const outcome = await swapDependency({ target: open(`${prefix}/a:latest`), dependency: open(`${prefix}/python3:latest`), layerChanges: new LayerChangesCache() });
    assert.equal(outcome.status, 'swapped', outcome.refusal?.message);
    assert.deepEqual(outcome.transfers, { present: 1, mounted: 1, uploaded: 0 });
    const target = open(`${prefix}/a:latest`);
    await validateImage(target.store, target.repository, 'latest');
  });

  /** What a build records on its own layer: its real listing, signed with the builder's key. */
  const recorded = (key: Uint8Array, listing?: LayerEntry[]) => async (layer: BuiltLayer) => {
    const changes = await listBlobChanges(Readable.from(Buffer.from(layer.bytes)), layer.descriptor);
    assert.ok('entries' in changes);
    return recordLayerChanges(layer.descriptor, listing ?? changes.entries, key);
  };

  test("with the builders' key, an own layer's signed record replaces reading it; without the key it is read", async () => {
    const proxy = await startFaultyProxy(running.url);
    try {
      const key = randomBytes(32);
      const prefix = `docker://${proxy.host}/recorded`;
      const seeds = await pushSeeds(prefix, { describeOwn: recorded(key) });
      await pushLayered(prefix, 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'python 3.12\n' })]);
      const ownRead = () => proxy.requests.filter((request) => request.method === 'GET' && request.path === `/v2/recorded/a/blobs/${seeds.own.descriptor.digest}`).length;
      const request = (layerChanges: LayerChangesCache) => ({ target: open(`${prefix}/a:latest`), dependency: open(`${prefix}/python3:latest`), layerChanges });
      const unkeyed = await swapDependency({ ...request(new LayerChangesCache()), dryRun: true });
      assert.equal(unkeyed.status, 'planned', unkeyed.refusal?.message);
      assert.equal(ownRead(), 1, 'without the key the record is not trusted: the layer is read');
      // the dependency's slices (listed once per fan-out) are listed before counting
      // a cache of its own: the unkeyed swap's listing of the own layer must not answer for the record
      const keyed = new LayerChangesCache();
      await keyed.get(proxyStore(prefix), 'recorded/a', seeds.python3.descriptor, key);
      proxy.clear();
      const outcome = await swapDependency({ ...request(keyed), layerRecordKey: key });
      assert.equal(outcome.status, 'swapped', outcome.refusal?.message);
      assert.equal(ownRead(), 0);
      const requests = shape(proxy.requests).filter((line) => line.includes('/recorded/a/'));
      assert.deepEqual(requests, [
        'GET /v2/recorded/a/manifests/latest',
        'GET /v2/recorded/a/blobs/D',
        'POST /v2/recorded/a/blobs/uploads/?mount=D&from=recorded%2Fpython3',
        'POST /v2/recorded/a/blobs/uploads/',
        'PUT /v2/recorded/a/blobs/uploads/SESSION',
        'PUT /v2/recorded/a/manifests/latest',
      ]);
      // the record stays on the layer it describes, for the next swap
      const swapped = await inspectImage(open(`${prefix}/a:latest`));
      assert.equal(swapped.digest, outcome.after);
    } finally {
      await proxy.stop();
    }
  });

  test('a record forged to hide an overlap does not verify: the layer is read and the swap refused', async () => {
    const key = randomBytes(32);
    const prefix = `docker://${running.host}/forged`;
    // A's own layer rewrites python3's file; its pusher records only srv/A/app.py, with a key of its own, or with a copied mac
    const hidden: LayerEntry[] = [{ path: 'srv/A/app.py', kind: 'file' }];
    for (const describeOwn of [recorded(randomBytes(32), hidden), async (layer: BuiltLayer) => {
      const genuine = await recorded(key)(layer);
      const record = JSON.parse(genuine.annotations?.['restack.dev/changes'] ?? '{}') as { entries: unknown[] };
      record.entries = record.entries.filter((entry) => (entry as string[])[1] !== 'usr/bin/python3');
      return { ...genuine, annotations: { 'restack.dev/changes': JSON.stringify(record) } };
    }]) {
      const seeds = await pushSeeds(prefix, { ownFiles: { 'usr/bin/python3': 'patched by A\n' }, describeOwn });
      await pushLayered(prefix, 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'python 3.12\n' })]);
      const outcome = await swapDependency({ target: open(`${prefix}/a:latest`), dependency: open(`${prefix}/python3:latest`), layerChanges: new LayerChangesCache(), layerRecordKey: key });
      assert.equal(outcome.status, 'refused');
      assert.equal(outcome.refusal?.reason, 'Overlap', outcome.refusal?.message);
      assert.match(outcome.refusal?.message ?? '', /\/usr\/bin\/python3/);
    }
  });
});
