// Build pods on a real node (test/cluster/node-up: a kubelet with containerd and runc): the
// operator with the pod executor builds the seeds' example in build pods exactly as buildPod()
// makes them, which run LXC inside their user namespace under the Localhost seccomp profile;
// they push to a registry pod on the same node; python3+1 is then swapped into A. A failing run
// step ends Failed with the builder's termination message, and the admission policy refuses what
// a build namespace must never run. The operator holds a layer record key, as the chart gives it:
// each build pod gets its Stackerfile's key in a Secret and signs its layers' change records.
// One cluster and one node for the whole file.
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ApiException, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { referenceOpener } from '../../src/cli/commands/store-options.ts';
import { readStoredImage } from '../../src/engine/images.ts';
import { LayerChangesCache } from '../../src/engine/layer-changes.ts';
import { buildPod } from '../../src/operator/build-pod.ts';
import { buildPodSettings } from '../../src/operator/build-policy.ts';
import { PodExecutor } from '../../src/operator/executor-pod.ts';
import { recordKeyOf } from '../../src/operator/imagebuild-controller.ts';
import type { ImageBuild } from '../../src/operator/kube.ts';
import { Manager } from '../../src/operator/manager.ts';
import { recordedLayerChanges } from '../../src/swap/layer-record.ts';
import { pushBusyboxBase } from '../build-engine/helpers.ts';
import { eventually, useCluster, type Cluster, type RealNode } from '../cluster/harness.ts';
import { startRegistryPod, type RegistryPod } from '../cluster/registry-pod.ts';
import { startOrSkip } from '../services/service.ts';
import { allowBuilderImages, impersonating, operatorUser, podBuildPolicy, setUpPodBuilds } from './build-namespace.ts';
import { installCrds } from './install-crds.ts';
import { appRecipe, depsRecipe } from './seeds-recipes.ts';
import { stackerfileProgress } from './stackerfile-progress.ts';

const api = { group: 'restack.dev', version: 'v1alpha1' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const ns = 'real-builds';
const logger = pino({ level: process.env['RESTACK_TEST_LOG'] ?? 'silent' });
const open = referenceOpener({ insecure: true });
const layerRecordKey = randomBytes(32);

const { service: started, skip } = await startOrSkip(() => useCluster({ realNode: true }));

describe('build pods on a real node', { skip, timeout: 600_000 }, () => {
  const cluster = started as Cluster & { node: RealNode };
  let core: CoreV1Api;
  let objects: CustomObjectsApi;
  let registry: RegistryPod;
  let manager: Manager;
  let prefix: string;
  let base: string;

  const stackerfile = (name: string, recipe: string) =>
    objects.createNamespacedCustomObject({
      ...api,
      namespace: ns,
      plural: 'stackerfiles',
      body: {
        apiVersion: 'restack.dev/v1alpha1',
        kind: 'Stackerfile',
        metadata: { name },
        spec: { recipe, output: { registry: prefix, tags: ['latest'], insecure: true }, updates: { schedule: '*/2 * * * * *', onApplyUpdate: 'Swap', onBaseUpdate: 'Rebuild' } },
      },
    });
  const { get, builds, condition, readyAfter } = stackerfileProgress(() => objects, ns);
  const layersOf = async (image: string) => (await readStoredImage(open(`docker://${prefix}/${image}:latest`))).platforms[0]?.image.manifest.layers.map((l) => l.digest) ?? [];
  /** The node whose kubelet started the ImageBuild's build pod, from the kubelet's Started event. */
  const startedOn = async (build: ImageBuild) => {
    const events = await core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${build.status?.podName},reason=Started` });
    return events.items.map((event) => `${event.source?.component} on ${event.source?.host}`);
  };

  before(async () => {
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    await installCrds(cluster);
    // As docs/install.md: the operator's RBAC, the admission policy allowing the node's builder
    // image, and the build namespace at the privileged level with the policy's label.
    await setUpPodBuilds(cluster, [ns]);
    await allowBuilderImages(cluster, [cluster.node.builderImage]);
    registry = await startRegistryPod(cluster, 'real-registry');
    prefix = `${registry.host}/seeds`;
    base = `docker://${prefix}/base:latest`;
    await pushBusyboxBase(base, {}, open);
    manager = new Manager({
      kubeConfig: impersonating(cluster, operatorUser),
      logger,
      executor: new PodExecutor({ policy: podBuildPolicy(cluster.node.builderImage) }),
      namespace: ns,
      metricsBindAddress: '127.0.0.1:0',
      layerRecordKey,
      updates: { jitterWindowMs: 0, insecureRegistries: [registry.host] },
    });
    await manager.start();
  });
  after(async () => {
    await manager?.stop();
    await registry?.stop();
    await cluster?.stop();
  });

  let firstA: string[];

  test("the seeds' example builds in build pods on the real node and is pushed to the registry pod", async () => {
    await stackerfile('deps', depsRecipe(base, '3.11.9'));
    const deps = await readyAfter('deps', (b) => b.spec.reason === 'Initial');
    await stackerfile('app', appRecipe(base, prefix));
    const app = await readyAfter('app', (b) => b.spec.reason === 'Initial');

    for (const built of [deps.latest, app.latest]) {
      assert.equal(built.status?.phase, 'Succeeded', built.status?.message);
      assert.deepEqual(await startedOn(built), [`kubelet on ${cluster.node.name}`], 'the build ran under the real kubelet, not kwok');
      // The finished pod stays for its logs (the kubelet reports the container terminated before the pod's phase).
      const pod = await core.readNamespacedPod({ namespace: ns, name: built.status?.podName ?? '' });
      assert.equal(pod.spec?.hostUsers, false);
      assert.equal(pod.status?.containerStatuses?.[0]?.state?.terminated?.exitCode, 0);
      assert.match(await core.readNamespacedPodLog({ namespace: ns, name: pod.metadata?.name ?? '' }), /"event":"build-done"/);
    }
    assert.deepEqual(deps.sf.status?.images?.map((image) => image.name).sort(), ['python3', 'ssl']);
    const a = app.sf.status?.images?.find((image) => image.name === 'A');
    assert.equal(a?.ref, `${prefix}/a:latest`);
    assert.deepEqual(a?.inputs?.map((i) => `${i.role} ${i.ref}`).sort(), [`apply docker://${prefix}/python3:latest`, `apply docker://${prefix}/ssl:latest`, `from ${base}`]);
    firstA = await layersOf('a');
    assert.equal(firstA.length, 4, 'base, ssl, python3, A\'s own');
    // The build pod read its Stackerfile's key from the Secret the operator made for it, as the user namespace maps it.
    const a0 = open(`docker://${prefix}/a:latest`);
    const ownLayer = (await readStoredImage(a0)).platforms[0]?.image.manifest.layers.at(-1);
    assert.ok(ownLayer !== undefined);
    const listed = await new LayerChangesCache().get(a0.store, a0.repository, ownLayer);
    assert.ok('entries' in listed && listed.entries.some((entry) => entry.path.includes('srv/A/README')), JSON.stringify(listed));
    assert.deepEqual(recordedLayerChanges(ownLayer, recordKeyOf(layerRecordKey, app.sf)), listed.entries, "A's own layer records its changes under app's key, as its blob lists them");
    assert.equal(recordedLayerChanges(ownLayer, recordKeyOf(layerRecordKey, deps.sf)), undefined, "deps' key does not verify app's record");
    const manifest = await fetch(`${registry.url}/v2/seeds/a/manifests/${a?.digest}`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(manifest.status, 200, 'the digest the ImageBuild recorded is in the registry');
  });

  test('python3+1 is rebuilt in a pod and swapped into A: no build pod for A', async () => {
    await objects.patchNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name: 'deps', body: { spec: { recipe: depsRecipe(base, '3.12.4') } } }, mergePatch);
    await readyAfter('deps', (b) => b.spec.reason === 'RecipeChange');
    const python3 = await layersOf('python3');
    const { latest, all } = await readyAfter('app', (b) => b.spec.strategy === 'Swap');
    assert.deepEqual(all.map((b) => `${b.spec.strategy}/${b.spec.reason}`), ['Build/Initial', 'Swap/ApplyUpdate'], 'A was not rebuilt');
    assert.equal(latest.status?.podName, undefined, 'a swap runs in the operator, without a pod');
    assert.deepEqual(await layersOf('a'), [firstA[0], firstA[1], python3.at(-1), firstA[3]], "[base, ssl, python3+1, A's own unchanged]");
    assert.equal(latest.status?.checks?.find((c) => c.dependency.endsWith('/python3:latest'))?.result, 'Swapped');
  });

  test('a failing run step: a Failed ImageBuild with the step, the exit code and the last lines, from the termination message', async () => {
    await stackerfile('broken', `broken:\n  from: {type: docker, url: "${base}"}\n  run: |\n    echo "compiling A"\n    echo "make: *** [all] Error 3" >&2\n    exit 3\n`);
    const failed = await eventually(
      'the ImageBuild of broken Failed',
      async () => {
        const [build] = await builds('broken');
        return build?.status?.phase === 'Failed' ? build : undefined;
      },
      180_000,
    );
    const message = failed.status?.message ?? '';
    assert.match(message, /^layer broken, step run: RUN_FAILED: layer broken: run failed with exit code 3\b/, message);
    assert.match(message, /\ncompiling A\nmake: \*\*\* \[all\] Error 3$/, 'the last lines, as the builder left them in the termination message');
    assert.deepEqual(await startedOn(failed), [`kubelet on ${cluster.node.name}`]);
  });

  test('the admission policy refuses a pod asking for hostUsers: true or privileged: true', async () => {
    const pod = (name: string, change: (pod: V1Pod) => void): V1Pod => {
      const made = buildPod({
        imageBuild: { name, namespace: ns, uid: '00000000-0000-0000-0000-000000000000' },
        stackerfileName: 'admission',
        settings: buildPodSettings(podBuildPolicy(cluster.node.builderImage), { storage: 'overlay' }),
        recipeConfigMap: `${name}-recipe`,
        push: `docker://${prefix}`,
        tags: ['latest'],
        substitutions: {},
        insecure: true,
      });
      delete made.metadata?.ownerReferences;
      change(made);
      return made;
    };
    const refusal = async (body: V1Pod) => {
      try {
        // As the operator, so that only the field asked for makes the difference.
        await impersonating(cluster, operatorUser).makeApiClient(CoreV1Api).createNamespacedPod({ namespace: ns, body });
      } catch (error) {
        if (error instanceof ApiException) return String(error.body);
        throw error;
      }
      throw new Error(`the pod ${body.metadata?.name} was admitted`);
    };
    // The API server itself refuses an unmasked /proc outside a user namespace: asked without it.
    const hostUsers = pod('host-users', (p) => {
      p.spec!.hostUsers = true;
      delete p.spec!.containers[0]!.securityContext!.procMount;
    });
    assert.match(await refusal(hostUsers), /restack-build-pods.*must set hostUsers: false/);
    // Privileged implies privilege escalation (the API server refuses the pair otherwise).
    const privileged = pod('privileged', (p) => Object.assign(p.spec!.containers[0]!.securityContext!, { privileged: true, allowPrivilegeEscalation: true }));
    assert.match(await refusal(privileged), /restack-build-pods.*privileged containers are not allowed/);
  });
});
