// A python3 bump fanned out to 100 images by the operator (a real `restack operator` process),
// killed with SIGKILL half way and started again: every image ends at the right digest, with one
// Swap ImageBuild each and no tag on an incomplete manifest.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
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
  const stackerfiles = async () => ((await objects.listNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles' })) as { items: Stackerfile[] }).items;

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
});
