/**
 * `restack which`: the images that contain an input, found by provenance in a real
 * docker-registry, and from Stackerfile status on a real kube-apiserver.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { ApiextensionsV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { execa } from 'execa';
import type { InventoryEntry } from '../../src/engine/inventory.ts';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered, pushSeeds, type SeedImages } from '../swap/seeds.ts';
import { makeLayer } from '../services/images.ts';
import { restack } from './restack.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

const rows = (stdout: unknown) => JSON.parse(String(stdout)) as InventoryEntry[];

describe('restack which --registry', { skip }, () => {
  const running = registry as RunningRegistry;
  const prefix = () => `docker://${running.host}/team`;
  let seeds: SeedImages;
  let python3: string;
  after(() => running.stop());
  before(async () => {
    seeds = await pushSeeds(prefix());
    python3 = (await open(`${prefix()}/python3:latest`).store.resolve('team/python3', 'latest')).digest;
    // python3+1, pushed after A was made: A still contains the old python3
    await pushLayered(prefix(), 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'python 3.12\n' })]);
  });

  test('python3 at the digest A was made with lists A, as an apply input', async () => {
    const result = await restack(['which', `${prefix()}/python3@${python3}`, '--registry', prefix(), '--json']);
    assert.equal(result.exitCode, 0, String(result.stderr));
    assert.deepEqual(rows(result.stdout), [{ image: `${prefix()}/a:latest`, digest: seeds.a, input: `${prefix()}/python3:latest`, inputDigest: python3, role: 'apply' }]);
  });

  test('python3+1 is in no image yet; python3 without a digest is in A', async () => {
    const current = (await open(`${prefix()}/python3:latest`).store.resolve('team/python3', 'latest')).digest;
    const none = await restack(['which', `${prefix()}/python3@${current}`, '--registry', prefix(), '--json']);
    assert.deepEqual(rows(none.stdout), []);
    const any = await restack(['which', `${prefix()}/python3`, '--registry', prefix()]);
    assert.equal(any.exitCode, 0, String(any.stderr));
    assert.match(String(any.stdout), /^IMAGE\s+DIGEST\s+INPUT\s+INPUT DIGEST\s+ROLE\n/);
    assert.match(String(any.stdout), new RegExp(`team/a:latest .*team/python3:latest .*apply`));
  });

  test('the base is found as a from input of A', async () => {
    const result = await restack(['which', `${prefix()}/base`, '--registry', prefix(), '--json']);
    assert.deepEqual(rows(result.stdout).map((row) => [row.image, row.role]), [[`${prefix()}/a:latest`, 'from']]);
  });

  test('without --registry or --cluster: exit 1 and how to say where to look', async () => {
    const result = await restack(['which', `${prefix()}/python3`]);
    assert.equal(result.exitCode, 1);
    assert.match(String(result.stderr), /--registry docker:\/\/host\/prefix or --cluster/);
  });
});

describe('restack which --cluster', () => {
  let cluster: Cluster;
  const root = join(import.meta.dirname, '..', '..');
  before(async () => {
    cluster = await useCluster();
    await execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, 'apply', '-f', join(root, 'crds')]);
    const api = cluster.kubeConfig.makeApiClient(ApiextensionsV1Api);
    await eventually('stackerfiles.restack.dev Established', async () => {
      const crd: V1CustomResourceDefinition = await api.readCustomResourceDefinition({ name: 'stackerfiles.restack.dev' });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') || undefined;
    });
  });
  after(() => cluster?.stop());

  test("reads status.images[].inputs of Stackerfiles in every namespace", async () => {
    const objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const python3 = `sha256:${'3'.repeat(64)}`;
    const a = `sha256:${'a'.repeat(64)}`;
    const body = { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name: 'app', namespace: 'default' }, spec: { recipe: 'A: {from: {type: scratch}}\n', output: { registry: 'reg.example/team' } } };
    await eventually('a Stackerfile create (the new CRD may answer 429 at first)', () =>
      objects.createNamespacedCustomObject({ group: 'restack.dev', version: 'v1alpha1', namespace: 'default', plural: 'stackerfiles', body }).then(() => true),
    );
    const status = {
      images: [
        {
          name: 'A',
          ref: 'docker://reg.example/team/a:latest',
          digest: a,
          inputs: [
            { ref: 'docker://reg.example/team/base:latest', role: 'from', digest: `sha256:${'b'.repeat(64)}` },
            { ref: 'docker://reg.example/team/python3:latest', role: 'apply', digest: python3 },
          ],
        },
      ],
    };
    await objects.patchNamespacedCustomObjectStatus(
      { group: 'restack.dev', version: 'v1alpha1', namespace: 'default', plural: 'stackerfiles', name: 'app', body: { status } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    const env = { KUBECONFIG: cluster.kubeconfigPath };
    const found = await restack(['which', `docker://reg.example/team/python3@${python3}`, '--cluster', '--json'], { env });
    assert.equal(found.exitCode, 0, String(found.stderr));
    assert.deepEqual(rows(found.stdout), [{ image: 'docker://reg.example/team/a:latest', digest: a, input: 'docker://reg.example/team/python3:latest', inputDigest: python3, role: 'apply' }]);
    const other = await restack(['which', `docker://reg.example/team/python3@sha256:${'4'.repeat(64)}`, '--cluster', '--json'], { env });
    assert.deepEqual(rows(other.stdout), []);
  });
});
