// A python3 bump fanned out to 100 images by the operator (a real `restack operator` process),
// killed with SIGKILL half way and started again: every image ends at the right digest, with one
// Swap ImageBuild each and no tag on an incomplete manifest. Then what a swap costs in API writes
// (counted by the API server), and a Stackerfile status write lost between a swap and its record
// made up after a restart.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parse } from 'yaml';
import { CoreV1Api, CustomObjectsApi, RbacAuthorizationV1Api, type V1PolicyRule } from '@kubernetes/client-node';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import { apiWrites, countsSince } from '../cluster/api-requests.ts';
import { startOperatorProcess, type OperatorProcess } from './operator-process.ts';
import { installCrds } from './install-crds.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { validateImage } from '../services/images.ts';
import { open } from '../swap/seeds.ts';
import { readStoredImage } from '../../src/engine/images.ts';
import type { ImageBuild, Stackerfile } from '../../src/operator/kube.ts';
import { bumpPython3, pushFleetInputs, seedFleet, type FleetInputs } from './fleet.ts';

const root = join(import.meta.dirname, '..', '..');
const api = { group: 'restack.dev', version: 'v1alpha1' };
const ns = 'fanout';
const count = 100;
const names = Array.from({ length: count }, (_, i) => `app-${String(i).padStart(3, '0')}`);

const { service: started, skip } = await startOrSkip(() => startRegistry());
const isReady = (sf: Stackerfile) => sf.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
const python3Of = (sf: Stackerfile, fleet: FleetInputs) => sf.status?.images?.[0]?.inputs?.find((i) => i.ref === fleet.refs.python3)?.digest;

describe('a fan-out interrupted by SIGKILL', { timeout: 600_000, ...(skip === undefined ? {} : { skip }) }, () => {
  let cluster: Cluster;
  const registry = started as RunningRegistry;
  let objects: CustomObjectsApi;
  let fleet: FleetInputs;
  let operator: ChildProcess | undefined;
  let prefix: string;

  const startOperator = (): ChildProcess => {
    const child = spawn(
      process.execPath,
      [join(root, 'src', 'cli', 'main.ts'), 'operator', '--namespace', ns, '--executor', 'local', '--metrics-bind-address', '127.0.0.1:0', '--schedule-jitter', '0', '--min-schedule-interval', '1'],
      { env: { ...process.env, KUBECONFIG: cluster.kubeconfigPath }, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    child.stderr?.resume();
    return child;
  };
  const swaps = async () =>
    ((await objects.listNamespacedCustomObject({ ...api, namespace: ns, plural: 'imagebuilds' })) as { items: ImageBuild[] }).items.filter((b) => b.spec.strategy === 'Swap');
  const stackerfiles = async (namespace = ns) => ((await objects.listNamespacedCustomObject({ ...api, namespace, plural: 'stackerfiles' })) as { items: Stackerfile[] }).items;
  const imageBuilds = async (namespace: string) => ((await objects.listNamespacedCustomObject({ ...api, namespace, plural: 'imagebuilds' })) as { items: ImageBuild[] }).items;
  /** Every Stackerfile of the namespace passing `done`; waits up to 4 minutes. */
  const allOf = (namespace: string, what: string, done: (sf: Stackerfile) => boolean) =>
    eventually(`every Stackerfile in ${namespace} ${what}`, async () => {
      const items = await stackerfiles(namespace);
      return items.length > 0 && items.every(done) ? items : undefined;
    }, 240_000);
  /** The operator confined to `namespace`, as the kubeconfig's user. */
  const operatorIn = (namespace: string, kubeconfigPath = cluster.kubeconfigPath): Promise<OperatorProcess> =>
    startOperatorProcess({ kubeconfigPath, args: ['--namespace', namespace, '--executor', 'local', '--schedule-jitter', '0', '--min-schedule-interval', '1'] });
  const stop = async (operator: OperatorProcess) => {
    operator.signal('SIGTERM');
    await operator.exited;
  };
  /**
   * A namespace of up-to-date Stackerfiles (images under their own prefix) that an operator has
   * settled: Ready, their inputs checked, nothing more to write. The operator is stopped.
   */
  const settledFleet = async (namespace: string, count: number) => {
    await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
    const prefix = `${registry.host}/${namespace}`;
    const inputs = await pushFleetInputs(prefix);
    await seedFleet({ objects, namespace, prefix, fleet: inputs, names: Array.from({ length: count }, (_, i) => `app-${i}`), schedule: '*/2 * * * * *' });
    const operator = await operatorIn(namespace);
    await allOf(namespace, 'Ready with its inputs checked', (sf) => isReady(sf) && sf.status?.conditions?.find((c) => c.type === 'InputsAvailable')?.status === 'True');
    await stop(operator);
    return { prefix, inputs };
  };

  before(async () => {
    cluster = await useCluster();
    objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    await installCrds(cluster);
    await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: ns } } });
    prefix = `${registry.host}/fleet`;
    fleet = await pushFleetInputs(prefix);
    await seedFleet({ objects, namespace: ns, prefix, fleet, names, schedule: '*/2 * * * * *' });
  });
  after(async () => {
    operator?.kill('SIGKILL');
    await registry?.stop();
    await cluster?.stop();
  });

  test('every image ends swapped to python3+1, once', async () => {
    const python3 = await bumpPython3(prefix, fleet, '3.12.4');
    operator = startOperator();
    const firstRun = await eventually('some swaps done', async () => {
      const done = (await swaps()).filter((b) => b.status?.phase === 'Succeeded').length;
      return done >= 10 ? done : undefined;
    }, 120_000);
    operator.kill('SIGKILL');
    await new Promise((resolve) => operator?.once('exit', resolve));
    const afterKill = (await swaps()).length;
    operator = startOperator();

    const final = await eventually(
      `all ${count} Stackerfiles at python3+1`,
      async () => {
        const items = await stackerfiles();
        const current = items.filter((sf) => {
          const image = sf.status?.images?.[0];
          const ready = sf.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
          return ready && image?.inputs?.find((i) => i.ref === fleet.refs.python3)?.digest === python3;
        });
        return current.length === count ? items : undefined;
      },
      240_000,
    );
    operator.kill('SIGKILL');
    console.log(`# ${firstRun} swaps done before SIGKILL, ${afterKill} ImageBuilds existed then; all ${count} current after the restart`);

    const all = await swaps();
    const perStackerfile = new Map<string, number>();
    for (const build of all) perStackerfile.set(build.spec.stackerfileRef.name, (perStackerfile.get(build.spec.stackerfileRef.name) ?? 0) + 1);
    assert.equal(all.length, count, 'one Swap ImageBuild per Stackerfile, none duplicated by the restart');
    assert.ok([...perStackerfile.values()].every((n) => n === 1));
    const newLayer = (await readStoredImage(open(fleet.refs.python3))).platforms[0]?.image.manifest.layers.at(-1)?.digest;
    for (const sf of final) {
      const image = sf.status?.images?.[0];
      assert.ok(image !== undefined);
      const target = open(`docker://${image.ref}`);
      const stored = await readStoredImage(target);
      assert.equal(stored.top.descriptor.digest, image.digest, `${image.name}: the tag points at the digest in status`);
      const layers = stored.platforms[0]?.image.manifest.layers.map((l) => l.digest) ?? [];
      assert.equal(layers[2], newLayer, `${image.name}: python3's layer is python3+1's`);
      assert.equal(layers[1], fleet.ssl.descriptor.digest);
      await validateImage(target.store, target.repository, 'latest');
    }
  });

  test('a swap costs three API writes: its ImageBuild, that status and the Stackerfile status, and no Event', async () => {
    const namespace = 'fanout-writes';
    const count = 20;
    const { prefix, inputs } = await settledFleet(namespace, count);
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    const events = async () => (await core.listNamespacedEvent({ namespace })).items.length;
    // Started again over a settled fleet: its first reconciles find nothing to write.
    const operator = await operatorIn(namespace);
    try {
      const writesBefore = await apiWrites(cluster, 'restack.dev');
      const eventsBefore = await events();
      const python3 = await bumpPython3(prefix, inputs, '3.12.5');
      await allOf(namespace, 'Ready at python3+1', (sf) => isReady(sf) && python3Of(sf, inputs) === python3);
      // Stopped before counting, so no write can land after the count.
      await stop(operator);
      const writes = countsSince(writesBefore, await apiWrites(cluster, 'restack.dev'));
      assert.deepEqual(writes, { 'POST imagebuilds': count, 'PATCH imagebuilds/status': count, 'PATCH stackerfiles/status': count }, 'per swap: the ImageBuild, its status once, the Stackerfile status once');
      assert.equal((await events()) - eventsBefore, 0, 'no Event for a swap that went through');
    } finally {
      operator.signal('SIGKILL');
    }
  });

  test('a Stackerfile status write lost after its swap is made up after a restart, before the next bump is swapped from it', async () => {
    const namespace = 'fanout-crash';
    const count = 5;
    const { prefix, inputs } = await settledFleet(namespace, count);
    // The operator's own rules (config/rbac) without stackerfiles/status: it swaps, and every
    // Stackerfile status write after is refused, as if it died between the two.
    const rbac = cluster.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    const role = parse(await readFile(join(root, 'config', 'rbac', 'role.yaml'), 'utf8')) as { rules: V1PolicyRule[] };
    const rules = role.rules.map((rule) => ({ ...rule, resources: rule.resources?.filter((resource) => resource !== 'stackerfiles/status') }));
    await rbac.createNamespacedRole({ namespace, body: { metadata: { name: 'operator-without-status' }, rules } });
    await rbac.createNamespacedRoleBinding({
      namespace,
      body: { metadata: { name: 'operator-without-status' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'operator-without-status' }, subjects: [{ kind: 'ServiceAccount', name: 'restricted', namespace: 'default' }] },
    });
    const python3Next = await bumpPython3(prefix, inputs, '3.12.6');
    const withoutStatus = await operatorIn(namespace, cluster.restrictedKubeconfigPath);
    let first: ImageBuild[];
    try {
      first = await eventually(`a succeeded swap for each of the ${count} Stackerfiles`, async () => {
        const swaps = (await imageBuilds(namespace)).filter((b) => b.spec.strategy === 'Swap' && b.status?.phase === 'Succeeded');
        return swaps.length === count ? swaps : undefined;
      }, 240_000);
    } finally {
      withoutStatus.signal('SIGKILL');
      await withoutStatus.exited;
    }
    assert.ok((await stackerfiles(namespace)).every((sf) => python3Of(sf, inputs) === inputs.digests.python3), 'no Stackerfile status recorded a swap');

    // python3 moves again while no operator runs; the restarted one must swap python3+2 into the
    // images python3+1 is in, and say so.
    const python3Later = await bumpPython3(prefix, inputs, '3.12.7');
    const operator = await operatorIn(namespace);
    try {
      const final = await allOf(namespace, 'Ready at python3+2', (sf) => isReady(sf) && python3Of(sf, inputs) === python3Later);
      const builds = await imageBuilds(namespace);
      for (const sf of final) {
        const name = sf.metadata?.name ?? '';
        const swaps = builds.filter((b) => b.spec.stackerfileRef.name === name && b.spec.strategy === 'Swap');
        const before = first.find((b) => b.spec.stackerfileRef.name === name);
        assert.equal(swaps.length, 2, `${name}: the swap of python3+1 and that of python3+2, nothing more`);
        const after = swaps.find((b) => b !== undefined && b.metadata?.name !== before?.metadata?.name);
        assert.equal(after?.spec.previous, before?.metadata?.name, `${name}: the second swap follows the first`);
        assert.deepEqual(after?.status?.checks?.map((c) => [c.result, c.from, c.to]), [['Swapped', python3Next, python3Later]], `${name}: swapped from python3+1, which the first swap put there`);
        assert.equal(sf.status?.latestImageBuild, after?.metadata?.name);
      }
    } finally {
      await stop(operator);
    }
  });
});
