import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { inspectImage } from '../../src/engine/inspect.ts';
import { LayerChangesCache } from '../../src/engine/layer-changes.ts';
import { swapDependency } from '../../src/engine/swap.ts';
import { startFaultyProxy } from '../services/faulty-proxy.ts';
import { makeLayer, validateImage } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered, pushSeeds } from './seeds.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

/** The requests of a swap as `METHOD path` with digests and upload sessions shortened, in order. */
function shape(requests: { method: string; path: string }[]): string[] {
  return requests.map(({ method, path }) => `${method} ${path.replace(/sha256:[0-9a-f]{64}|sha256%3A[0-9a-f]{64}/g, 'D').replace(/uploads\/[0-9a-f-]{36}\?[^ ]*/, 'uploads/SESSION')}`);
}

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
});
