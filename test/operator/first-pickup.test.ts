// An operator started over Stackerfiles that are up to date but were never reconciled (a new
// install, or the status lost): each gets one status write, and its Ready comes with its inputs
// checked, never before.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, CustomObjectsApi, Watch } from '@kubernetes/client-node';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import type { Stackerfile } from '../../src/operator/kube.ts';
import { findCondition } from '../../src/operator/conditions.ts';
import { installCrds } from './install-crds.ts';
import { pushFleetInputs, seedFleet } from './fleet.ts';
import { standInBuilderCommand, startOperatorProcess, type OperatorProcess } from './operator-process.ts';

const api = { group: 'restack.dev', version: 'v1alpha1' };
const ns = 'first-pickup';
// More than the operator's 8 workers: the first ones are reconciled before any check has ended.
const names = Array.from({ length: 40 }, (_, i) => `app-${String(i).padStart(2, '0')}`);

const checked = (sf: Stackerfile) => findCondition(sf.status?.conditions, 'InputsAvailable')?.status === 'True';

const { service: started, skip } = await startOrSkip(() => startRegistry());

describe('an operator picking up Stackerfiles for the first time', { timeout: 300_000, ...(skip === undefined ? {} : { skip }) }, () => {
  let cluster: Cluster;
  const registry = started as RunningRegistry;
  let operator: OperatorProcess | undefined;

  before(async () => {
    cluster = await useCluster();
    await installCrds(cluster);
    await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: ns } } });
  });
  after(async () => {
    operator?.signal('SIGKILL');
    await operator?.exited;
    await registry?.stop();
    await cluster?.stop();
  });

  test('writes each status once: Ready with InputsAvailable, never Ready before its inputs were checked', async () => {
    const objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const prefix = `${registry.host}/first`;
    await seedFleet({ objects, namespace: ns, prefix, fleet: await pushFleetInputs(prefix), names, schedule: '0 0 1 1 *' });
    const listed = (await objects.listNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles' })) as { metadata?: { resourceVersion?: string } };
    // Every write the operator makes to a Stackerfile, from the seeded state on.
    const writes = new Map<string, Stackerfile[]>();
    const watch = await new Watch(cluster.kubeConfig).watch(
      `/apis/${api.group}/${api.version}/namespaces/${ns}/stackerfiles`,
      { resourceVersion: listed.metadata?.resourceVersion },
      (phase, sf: Stackerfile) => {
        if (phase === 'MODIFIED') writes.set(sf.metadata?.name ?? '', [...(writes.get(sf.metadata?.name ?? '') ?? []), sf]);
      },
      () => {},
    );
    try {
      operator = await startOperatorProcess({ kubeconfigPath: cluster.kubeconfigPath, args: ['--namespace', ns, '--executor', 'local', '--builder', standInBuilderCommand] });
      await eventually(`all ${names.length} Stackerfiles written with their inputs checked`, async () =>
        names.every((name) => writes.get(name)?.some(checked)) ? true : undefined, 120_000);
    } finally {
      watch.abort();
    }
    for (const name of names) {
      const seen = writes.get(name) ?? [];
      for (const sf of seen) {
        if (findCondition(sf.status?.conditions, 'Ready')?.status === 'True') assert.ok(checked(sf), `${name}: Ready before its inputs were checked: ${JSON.stringify(sf.status?.conditions)}`);
      }
      assert.equal(seen.length, 1, `${name}: status written ${seen.length} times: ${JSON.stringify(seen.map((sf) => sf.status?.conditions?.map((c) => c.type)))}`);
      assert.equal(findCondition(seen[0]?.status?.conditions, 'Ready')?.status, 'True', `${name} is Ready`);
      assert.equal(seen[0]?.status?.observedGeneration, seen[0]?.metadata?.generation);
    }
  });
});
