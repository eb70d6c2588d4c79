import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { ApiextensionsV1Api, CustomObjectsApi, type V1CustomResourceDefinition } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';

const root = join(import.meta.dirname, '..', '..');
const seeds = readFileSync(join(root, 'test', 'fixtures', 'recipes', 'seeds-example.yaml'), 'utf8');

describe('the generated CRDs on a real API server', () => {
  let cluster: Cluster;
  before(async () => {
    cluster = await useCluster();
  });
  after(() => cluster?.stop());

  test('kubectl apply -f crds/ succeeds and both kinds become Established', async () => {
    const kubectl = join(cluster.binDir, 'kubectl');
    await execa(kubectl, ['--kubeconfig', cluster.kubeconfigPath, 'apply', '-f', join(root, 'crds')]);
    const api = cluster.kubeConfig.makeApiClient(ApiextensionsV1Api);
    for (const name of ['stackerfiles.restack.dev', 'imagebuilds.restack.dev']) {
      await eventually(`${name} Established`, async () => {
        const crd: V1CustomResourceDefinition = await api.readCustomResourceDefinition({ name });
        return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') || undefined;
      });
    }
    // Discovery serves a new kind a moment after it is Established.
    const explain = await eventually('kubectl explain to know Stackerfile', async () =>
      (await execa(kubectl, ['--kubeconfig', cluster.kubeconfigPath, 'explain', 'stackerfile.spec.updates.onApplyUpdate'])).stdout,
    );
    assert.match(explain, /Swap its layers in place/);
  });

  test("the seeds' Stackerfile is accepted and defaulted by the server; recipe and recipeFrom together are rejected", async () => {
    const objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const body = { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name: 'seeds' }, spec: { recipe: seeds, output: { registry: '127.0.0.1:5000/team' } } };
    const created = (await eventually('a Stackerfile create (the new CRD may answer 429 at first)', () =>
      objects.createNamespacedCustomObject({ group: 'restack.dev', version: 'v1alpha1', namespace: 'default', plural: 'stackerfiles', body }),
    )) as { spec: { updates: unknown; output: { tags: string[] }; history: unknown } };
    assert.deepEqual(created.spec.updates, { onApplyUpdate: 'Swap', onBaseUpdate: 'Rebuild' });
    assert.deepEqual(created.spec.output.tags, ['latest']);
    assert.deepEqual(created.spec.history, { succeeded: 10, failed: 5 });

    const both = { ...body, metadata: { name: 'both' }, spec: { ...body.spec, recipeFrom: { configMapKeyRef: { name: 'cm', key: 'stacker.yaml' } } } };
    await assert.rejects(
      objects.createNamespacedCustomObject({ group: 'restack.dev', version: 'v1alpha1', namespace: 'default', plural: 'stackerfiles', body: both }),
      (error: Error) => /give exactly one of recipe and recipeFrom/.test(String((error as { body?: unknown }).body ?? error.message)),
    );
    const bad = { ...body, metadata: { name: 'bad' }, spec: { ...body.spec, updates: { onApplyUpdate: 'Sometimes' } } };
    await assert.rejects(
      objects.createNamespacedCustomObject({ group: 'restack.dev', version: 'v1alpha1', namespace: 'default', plural: 'stackerfiles', body: bad }),
      (error: Error) => /onApplyUpdate/.test(String((error as { body?: unknown }).body ?? error.message)),
    );
  });

  test('spec.builder.timeout: hours, minutes and seconds longer than 0s; anything else is rejected naming the field', async () => {
    const objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const create = (name: string, timeout: string) =>
      objects.createNamespacedCustomObject({
        group: 'restack.dev', version: 'v1alpha1', namespace: 'default', plural: 'stackerfiles',
        body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec: { recipe: seeds, output: { registry: '127.0.0.1:5000/team' }, builder: { timeout } } },
      });
    const created = (await eventually('a Stackerfile create', () => create('timeout-ok', '1h30m'))) as { spec: { builder: unknown } };
    assert.deepEqual(created.spec.builder, { storage: 'overlay', timeout: '1h30m' });
    const answer = (error: Error) => String((error as { body?: unknown }).body ?? error.message);
    await assert.rejects(create('timeout-zero', '0m'), (error: Error) => /builder.timeout must be a duration longer than 0s, e.g. 45m or 1h30m/.test(answer(error)));
    await assert.rejects(create('timeout-days', '2d'), (error: Error) => /spec\.builder\.timeout: Invalid value: .{0,4}2d.{0,4}: spec\.builder\.timeout in body should match/.test(answer(error)));
  });

  test('spec.output.registry is host[:port]/prefix: a scheme, a trailing slash or an empty segment is rejected naming the field', async () => {
    const objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const create = (name: string, registry: string) =>
      objects.createNamespacedCustomObject({
        group: 'restack.dev', version: 'v1alpha1', namespace: 'default', plural: 'stackerfiles',
        body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec: { recipe: seeds, output: { registry } } },
      });
    await eventually('a Stackerfile create', () => create('registry-ok', '127.0.0.1:5000/team/apps'));
    const answer = (error: Error) => String((error as { body?: unknown }).body ?? error.message);
    for (const [name, registry] of [['registry-slash', '127.0.0.1:5000/team/'], ['registry-scheme', 'docker://127.0.0.1:5000/team'], ['registry-empty', '127.0.0.1:5000//team']] as const) {
      await assert.rejects(create(name, registry), (error: Error) => /spec\.output\.registry in body should match/.test(answer(error)), registry);
    }
  });

  test('the printer columns show Ready, Images and Registry', async () => {
    const crd = parse(readFileSync(join(root, 'crds', 'stackerfiles.yaml'), 'utf8')) as { spec: { versions: { additionalPrinterColumns: { name: string }[] }[] } };
    const columns = crd.spec.versions[0]?.additionalPrinterColumns.map((c) => c.name);
    const get = await execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, 'get', 'sf']);
    for (const column of columns ?? []) assert.match(get.stdout, new RegExp(column.toUpperCase()));
    assert.match(get.stdout, /seeds/);
  });
});
