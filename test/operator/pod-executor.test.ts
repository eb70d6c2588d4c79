/**
 * The executors against the real control plane: build pods followed to their termination message
 * (kwok plays the kubelet of a node of this test's own, finishing each pod the way the test
 * annotates it), and one real `restack build` under the local executor, pushing to docker-registry.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, realpath, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AdmissionregistrationV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type V1Pod } from '@kubernetes/client-node';
import { pino } from 'pino';
import { decodeResultMessage, encodeResultMessage, type ResultMessage } from '../../src/engine/build/result-message.ts';
import { buildPodLabels } from '../../src/operator/build-pod.ts';
import { buildPodDefaultsSchema } from '../../src/operator/build-policy.ts';
import type { BuildRequest, Executor } from '../../src/operator/executor.ts';
import { LocalExecutor } from '../../src/operator/executor-local.ts';
import { PodExecutor, podProgress } from '../../src/operator/executor-pod.ts';
import type { ImageBuild, Stackerfile } from '../../src/operator/kube.ts';
import { Manager } from '../../src/operator/manager.ts';
import { deriveRecordKey } from '../../src/swap/layer-record.ts';
import { build as restackBuild, pushBusyboxBase, suiteDir } from '../build-engine/helpers.ts';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import { configuredBuilderImage, impersonating, operatorUser, setUpPodBuilds } from './build-namespace.ts';
import { startDroppingWebhook } from './dropping-webhook.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { spawnService, type ChildService } from '../services/service.ts';
import { installCrds } from './install-crds.ts';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'src', 'cli', 'main.ts');
const seeds = await readFile(join(root, 'test', 'fixtures', 'recipes', 'seeds-example.yaml'), 'utf8');
const api = { group: 'restack.dev', version: 'v1alpha1' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const logger = pino({ level: process.env['RESTACK_TEST_LOG'] ?? 'silent' });
const { service: registry, skip } = await startOrSkip(() => startRegistry());
const pushUser = { name: 'builder', password: 'push-secret' };
const { service: securedRegistry, skip: securedSkip } = await startOrSkip(() => startRegistry({ htpasswd: { [pushUser.name]: pushUser.password } }));

/** Annotations this test puts on a running build pod to have kwok end it (see outcomeStage). */
const outcome = { exitCode: 'restack.test/exit-code', reason: 'restack.test/reason', message: 'restack.test/message' };

/**
 * A kwok Stage: a running pod that carries outcome.exitCode terminates with that exit code, reason
 * and termination message, Succeeded on 0 and Failed otherwise, as a kubelet reports a container
 * that wrote /dev/termination-log and exited.
 */
const outcomeStage = `---
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: restack-test-pod-outcome
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values: ['Running']
    - key: '.metadata.annotations["${outcome.exitCode}"]'
      operator: 'Exists'
  next:
    statusTemplate: |
      {{ $now := Now }}
      {{ $annotations := or .metadata.annotations dict }}
      {{ $code := index $annotations "${outcome.exitCode}" }}
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        restartCount: 0
        started: false
        state:
          terminated:
            exitCode: {{ $code }}
            reason: {{ or ( index $annotations "${outcome.reason}" ) "Completed" | Quote }}
            message: {{ or ( index $annotations "${outcome.message}" ) "" | Quote }}
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
      {{ end }}
      phase: {{ if eq $code "0" }}Succeeded{{ else }}Failed{{ end }}
`;

interface Api {
  cluster: Cluster;
  core: CoreV1Api;
  objects: CustomObjectsApi;
}

function apiOf(cluster: Cluster): Api {
  return { cluster, core: cluster.kubeConfig.makeApiClient(CoreV1Api), objects: cluster.kubeConfig.makeApiClient(CustomObjectsApi) };
}

const createStackerfile = ({ objects }: Api, namespace: string, name: string, spec: object) =>
  eventually('Stackerfile create', () => objects.createNamespacedCustomObject({ ...api, namespace, plural: 'stackerfiles', body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec } }));
const getStackerfile = async ({ objects }: Api, namespace: string, name: string) => (await objects.getNamespacedCustomObject({ ...api, namespace, plural: 'stackerfiles', name })) as Stackerfile;
const buildsOf = async ({ objects }: Api, namespace: string, stackerfile: string) =>
  ((await objects.listNamespacedCustomObject({ ...api, namespace, plural: 'imagebuilds' })) as { items: ImageBuild[] }).items.filter((build) => build.spec.stackerfileRef.name === stackerfile);
/** The one ImageBuild of a Stackerfile, once `ready` holds for it. */
const eventuallyBuild = (a: Api, namespace: string, stackerfile: string, what: string, ready: (build: ImageBuild) => boolean, timeoutMs?: number) =>
  eventually(
    `${stackerfile}'s ImageBuild ${what}`,
    async () => {
      const [build] = await buildsOf(a, namespace, stackerfile);
      return build !== undefined && ready(build) ? build : undefined;
    },
    timeoutMs,
  );
const podsOf = async ({ core }: Api, namespace: string, imageBuild: string) => (await core.listNamespacedPod({ namespace, labelSelector: `${buildPodLabels.imageBuild}=${imageBuild}` })).items;

/** The operator in `namespace`, as `kubeConfig`'s user: the admin unless given (the pod executor runs as its ServiceAccount). */
function startManager(cluster: Cluster, namespace: string, executor: Executor, kubeConfig = cluster.kubeConfig, layerRecordKey?: Uint8Array): Promise<Manager> {
  const manager = new Manager({ kubeConfig, logger, executor, namespace, metricsBindAddress: '127.0.0.1:0', ...(layerRecordKey === undefined ? {} : { layerRecordKey }) });
  return manager.start().then(() => manager);
}

describe('a build pod read from its status', () => {
  const request: BuildRequest = {
    imageBuild: { name: 'app-1-abcdef', namespace: 'team', uid: 'u' },
    stackerfileName: 'app',
    recipe: '',
    registry: 'registry.example/team',
    tags: ['latest'],
    insecure: false,
    substitutions: {},
    builder: { storage: 'overlay' },
  };
  const pod = (status: V1Pod['status'], deleting = false): V1Pod => ({ metadata: { name: 'app-1-abcdef-build', ...(deleting ? { deletionTimestamp: new Date() } : {}) }, status });

  test('pending or running is running; a container that cannot start, or a pod being deleted, is a failure that says why; an eviction may pass on another try', () => {
    assert.deepEqual(podProgress(pod({ phase: 'Pending' }), request), { state: 'running', podName: 'app-1-abcdef-build' });
    const pull = podProgress(pod({ phase: 'Pending', containerStatuses: [{ name: 'build', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff', message: 'Back-off pulling image "x"' } } }] }), request);
    assert.deepEqual(pull, { state: 'done', result: { ok: false, message: 'the build pod team/app-1-abcdef-build cannot start: ImagePullBackOff: Back-off pulling image "x"; check spec.builder.image and the operator\'s --builder-image' } });
    assert.deepEqual(podProgress(pod({ phase: 'Running' }, true), request), { state: 'done', result: { ok: false, message: 'the build pod team/app-1-abcdef-build was deleted before it finished' } });
    assert.deepEqual(podProgress(pod({ phase: 'Failed', reason: 'Evicted', message: 'The node was low on resource: memory.' }), request), {
      state: 'done',
      result: { ok: false, message: 'the build pod team/app-1-abcdef-build is Failed without a result: Evicted: The node was low on resource: memory.', retryable: true },
    });
  });

  test('a container the runtime cannot create points at the seccomp profile a node may lack', () => {
    const noProfile = podProgress(pod({ phase: 'Pending', containerStatuses: [{ name: 'build', image: 'x', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'CreateContainerError', message: 'failed to generate seccomp spec opts: cannot load seccomp profile "/var/lib/kubelet/seccomp/restack/build.json": no such file or directory' } } }] }), request);
    assert.deepEqual(noProfile, {
      state: 'done',
      result: {
        ok: false,
        message:
          'the build pod team/app-1-abcdef-build cannot start: CreateContainerError: failed to generate seccomp spec opts: cannot load seccomp profile "/var/lib/kubelet/seccomp/restack/build.json": no such file or directory; a node without the seccomp profile restack/build.json fails here: install it (docs/install.md)',
      },
    });
  });

  test('a pod stopped at its deadline (spec.builder.timeout) says so and how to give it longer', () => {
    const late: V1Pod = { metadata: { name: 'app-1-abcdef-build' }, spec: { containers: [], activeDeadlineSeconds: 2700 }, status: { phase: 'Failed', reason: 'DeadlineExceeded', message: 'Pod was active on the node longer than the specified deadline' } };
    assert.deepEqual(podProgress(late, request), {
      state: 'done',
      result: { ok: false, message: "the build pod team/app-1-abcdef-build ran longer than its deadline of 2700 s and was stopped; raise spec.builder.timeout (default: the operator's --build-pod-defaults timeout)" },
    });
  });

  test('a terminated container without our result reports the kubelet\'s fallback: the log tail', () => {
    const killed = podProgress(pod({ phase: 'Failed', containerStatuses: [{ name: 'build', image: 'x', imageID: '', ready: false, restartCount: 0, state: { terminated: { exitCode: 1, reason: 'Error', message: 'node: cannot open /restack/recipe/stacker.yaml' } } }] }), request);
    assert.deepEqual(killed, { state: 'done', result: { ok: false, message: 'the build pod team/app-1-abcdef-build ended without a result: Error (exit code 1)\nnode: cannot open /restack/recipe/stacker.yaml' } });
  });
});

/**
 * A recipe the real builder makes without a run step (so without a container), and what it
 * really pushed: the builds below report it, or forgeries of it, from their pods.
 */
async function builtForReal(dir: string, registry: RunningRegistry, prefix: string, recipe: string): Promise<Extract<ResultMessage, { outputs: unknown }>> {
  await writeFile(join(dir, 'ssl.txt'), 'openssl 3.0.13\n');
  await writeFile(join(dir, `${prefix}.yaml`), recipe);
  const result = join(dir, `${prefix}.result`);
  const run = await restackBuild(['-f', join(dir, `${prefix}.yaml`), '--oci-dir', join(dir, `${prefix}-oci`), '--roots-dir', join(dir, `${prefix}-roots`), '--push', `docker://${registry.host}/${prefix}`, '--tag', 'v1', '--termination-log', result]);
  const message = decodeResultMessage(await readFile(result, 'utf8'));
  if (run.exitCode !== 0 || message === undefined || !('outputs' in message)) throw new Error(`the build of ${prefix} failed: ${run.stderr}`);
  return message;
}

describe('the pod executor with kwok as the kubelet', { ...(skip === undefined ? {} : { skip }) }, () => {
  const ns = 'builds';
  const pushed = registry as RunningRegistry;
  const base = () => `docker://${pushed.host}/base/busybox:latest`;
  /** ssl and python3 each import a file; A applies both: a build without a container. */
  const recipe = () =>
    `ssl:\n  from: {type: docker, url: "${base()}"}\n  imports: [{path: ssl.txt, dest: /usr/lib/ssl/version}]\n` +
    `python3:\n  from: {type: docker, url: "${base()}"}\n  imports: [{path: ssl.txt, dest: /usr/bin/python3}]\n` +
    'A:\n  from: {type: docker, url: "' + base() + '"}\n  apply: [ssl, python3]\n';
  /** What the builder pushed to <registry>/team with tag v1. */
  let real: Extract<ResultMessage, { outputs: unknown }>;
  const realOutput = (name: string) => real.outputs.find((output) => output.name === name) as Extract<ResultMessage, { outputs: unknown }>['outputs'][number];
  const output = () => ({ registry: `${pushed.host}/team`, tags: ['v1'] });
  let a: Api;
  let kwok: ChildService | undefined;
  let manager: Manager | undefined;
  let stagesDir: string;
  /** Allowed by the operator, not by the admission policy's parameters: a cluster admin's mismatch. */
  const allowedByOperatorOnly = 'registry.example/restack/builder:0.2.0-rc1';
  const podExecutor = () =>
    new PodExecutor({
      policy: { builderImage: configuredBuilderImage, allowedBuilderImages: [allowedByOperatorOnly], defaults: buildPodDefaultsSchema.parse({ startTimeout: '15s' }) },
      pendingRecheckMs: 500,
    });
  /** The operator's master layer record key (--layer-record-key-file). */
  const masterKey = randomBytes(32);
  /** As config/rbac and the admission policy's parameters say: the operator's ServiceAccount. */
  const startOperator = () => startManager(a.cluster, ns, podExecutor(), impersonating(a.cluster, operatorUser), masterKey);

  /** Has kwok end the running build pod of `imageBuild` with this exit code, reason and termination message. */
  const endPod = async (imageBuild: ImageBuild, exitCode: number, reason: string, message: string) => {
    const name = imageBuild.status?.podName ?? '';
    await eventually(`pod ${name} Running`, async () => ((await a.core.readNamespacedPod({ namespace: ns, name })).status?.phase === 'Running' ? true : undefined));
    await a.core.patchNamespacedPod({ namespace: ns, name, body: { metadata: { annotations: { [outcome.exitCode]: String(exitCode), [outcome.reason]: reason, [outcome.message]: message } } } }, mergePatch);
  };

  before(async () => {
    a = apiOf(await useCluster());
    const { cluster, core } = a;
    await installCrds(cluster);
    // The level docs/build-pod.md states, the label the admission policy's binding selects, the operator's RBAC.
    await setUpPodBuilds(cluster, [ns]);

    // A node of this test's own, run by a kwok with the outcome stage on top of the standard ones;
    // the cluster's node is cordoned so every build pod lands here.
    stagesDir = await suiteDir('restack-kwok-');
    const standardStages = join(dirname(await realpath(join(cluster.binDir, 'kwok'))), '..', 'stages.yaml');
    await writeFile(join(stagesDir, 'stages.yaml'), `${await readFile(standardStages, 'utf8')}\n${outcomeStage}`);
    kwok = spawnService(join(cluster.binDir, 'kwok'), [
      '--kubeconfig', cluster.kubeconfigPath, '--config', join(stagesDir, 'stages.yaml'),
      '--manage-all-nodes=false', '--manage-nodes-with-annotation-selector', 'restack.dev/test-kwok=builds',
    ]);
    await core.patchNode({ name: 'kwok-node', body: { spec: { unschedulable: true } } }, mergePatch);
    await core.createNode({ body: { metadata: { name: 'build-node', annotations: { 'restack.dev/test-kwok': 'builds' }, labels: { 'kubernetes.io/hostname': 'build-node', 'kubernetes.io/os': 'linux', type: 'kwok' } } } });
    await eventually('node build-node Ready', async () => ((await core.readNode({ name: 'build-node' })).status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? true : undefined), 60_000);
    await pushBusyboxBase(base());
    real = await builtForReal(stagesDir, pushed, 'team', recipe());
    manager = await startOperator();
  });
  after(async () => {
    await manager?.stop();
    await kwok?.stop();
    if (stagesDir !== undefined) await rm(stagesDir, { recursive: true, force: true });
  });

  test("the ImageBuild writes its recipe ConfigMap, its Stackerfile's record key Secret and an admitted pod; the result in its termination message makes it Succeeded", async () => {
    await createStackerfile(a, ns, 'ok', { recipe: recipe(), output: output() });
    const running = await eventuallyBuild(a, ns, 'ok', 'Running with a pod', (build) => build.status?.phase === 'Running' && build.status.podName !== undefined);
    const name = running.metadata?.name ?? '';
    assert.equal(running.status?.podName, `${name}-build`);

    const configMap = await a.core.readNamespacedConfigMap({ namespace: ns, name: `${name}-recipe` });
    assert.equal(configMap.data?.['stacker.yaml'], recipe());
    assert.equal(configMap.metadata?.ownerReferences?.[0]?.uid, running.metadata?.uid, 'owned by the ImageBuild: deleting it cleans up');

    const [pod, ...others] = await podsOf(a, ns, name);
    assert.equal(others.length, 0);
    assert.equal(pod?.spec?.hostUsers, false);
    assert.equal(pod?.spec?.nodeName, 'build-node', 'admitted under Pod Security and the policy, and scheduled');
    assert.equal(pod?.spec?.containers[0]?.image, configuredBuilderImage);
    assert.equal(pod?.spec?.activeDeadlineSeconds, 3600, 'the default timeout, one hour');
    const args = pod?.spec?.containers[0]?.args ?? [];
    assert.deepEqual(args.slice(args.indexOf('--push')), ['--push', `docker://${pushed.host}/team`, '--tag', 'v1', '--termination-log', '/dev/termination-log', '--json']);
    // The record key: this Stackerfile's alone, in a Secret of this build's, owned by its ImageBuild.
    const keySecret = await a.core.readNamespacedSecret({ namespace: ns, name: `${name}-record-key` });
    assert.deepEqual(Buffer.from(keySecret.data?.['layer-record.key'] ?? '', 'base64'), Buffer.from(deriveRecordKey(masterKey, `${ns}/ok`)));
    assert.equal(keySecret.metadata?.ownerReferences?.[0]?.uid, running.metadata?.uid);
    assert.equal(pod?.spec?.containers[0]?.env?.find((variable) => variable.name === 'RESTACK_LAYER_RECORD_KEY_FILE')?.value, '/restack/layer-record/layer-record.key');
    assert.equal(pod?.spec?.volumes?.find((volume) => volume.name === 'layer-record-key')?.secret?.secretName, `${name}-record-key`);

    await endPod(running, 0, 'Completed', encodeResultMessage(real));
    const succeeded = await eventuallyBuild(a, ns, 'ok', 'Succeeded', (build) => build.status?.phase === 'Succeeded' || build.status?.phase === 'Failed');
    assert.equal(succeeded.status?.phase, 'Succeeded', succeeded.status?.message);
    assert.deepEqual(succeeded.status?.outputs, real.outputs, 'every output checked against the registry');
    const inputs = realOutput('A').inputs;
    const stackerfile = await eventually('Ready', async () => {
      const sf = await getStackerfile(a, ns, 'ok');
      return sf.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ? sf : undefined;
    });
    assert.deepEqual(stackerfile.status?.images?.find((image) => image.name === 'A')?.inputs, inputs);
    await eventually('the recipe ConfigMap released', () => a.core.readNamespacedConfigMap({ namespace: ns, name: `${name}-recipe` }).then(() => undefined, () => true));
  });

  test('a pod that fails: with the builder\'s error, or killed without a result, gives a Failed ImageBuild saying what happened', async () => {
    await createStackerfile(a, ns, 'broken-run', { recipe: seeds, output: { registry: '127.0.0.1:5000/team' } });
    await createStackerfile(a, ns, 'oom', { recipe: seeds, output: { registry: '127.0.0.1:5000/team' } });
    const error = { step: 'run', layer: 'A', code: 'RUN_FAILED', message: 'the run step exited with 2', lastLines: ['./A/install: line 3: make: not found'] };
    await endPod(await eventuallyBuild(a, ns, 'broken-run', 'Running', (b) => b.status?.podName !== undefined), 1, 'Error', encodeResultMessage({ v: 1, error }));
    await endPod(await eventuallyBuild(a, ns, 'oom', 'Running', (b) => b.status?.podName !== undefined), 137, 'OOMKilled', '');

    const broken = await eventuallyBuild(a, ns, 'broken-run', 'Failed', (b) => b.status?.phase === 'Failed');
    assert.equal(broken.status?.message, 'layer A, step run: RUN_FAILED: the run step exited with 2\n./A/install: line 3: make: not found');
    const oom = await eventuallyBuild(a, ns, 'oom', 'Failed', (b) => b.status?.phase === 'Failed');
    assert.match(oom.status?.message ?? '', /^the build pod builds\/oom-1-[0-9a-f]{6}-build ended without a result: OOMKilled \(exit code 137\)$/);
    assert.equal(oom.status?.conditions?.find((c) => c.type === 'Succeeded')?.status, 'False');
    const stalled = await eventually('Stalled', async () => {
      const sf = await getStackerfile(a, ns, 'oom');
      return sf.status?.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True');
    });
    assert.match(stalled.message, /OOMKilled/);
  });

  test('an operator restarted while the pod runs follows the same pod: no second pod, no restart', async () => {
    await createStackerfile(a, ns, 'long', { recipe: recipe(), output: output() });
    const running = await eventuallyBuild(a, ns, 'long', 'Running', (b) => b.status?.podName !== undefined);
    const name = running.metadata?.name ?? '';
    const [pod] = await podsOf(a, ns, name);
    await manager?.stop();
    manager = await startOperator();
    // As the builder shortens a result that does not fit: no ref, no inputs.
    await endPod(running, 0, 'Completed', encodeResultMessage({ v: 1, outputs: real.outputs.map(({ name, digest }) => ({ name, digest })), dropped: ['inputs', 'refs'] }));

    const succeeded = await eventuallyBuild(a, ns, 'long', 'Succeeded', (b) => b.status?.phase === 'Succeeded');
    assert.deepEqual(succeeded.status?.outputs, real.outputs, 'the refs from the registry and tag, the inputs from the images\' provenance');
    assert.equal(succeeded.status?.startTime, running.status?.startTime);
    const pods: V1Pod[] = await podsOf(a, ns, name);
    assert.deepEqual(pods.map((p) => p.metadata?.uid), [pod?.metadata?.uid]);
    const events = await a.core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` });
    assert.deepEqual(events.items.map((e) => e.reason).sort(), ['Started', 'Succeeded']);
  });

  test('a forged termination message fails the ImageBuild, saying how it departs from the registry; nothing is recorded', async () => {
    const A = realOutput('A');
    // A real image at the tag whose provenance names another input than the recipe's.
    const evil = await builtForReal(stagesDir, pushed, 'evil', `A:\n  from: {type: docker, url: "${base()}"}\n  apply: ["docker://${pushed.host}/team/python3:v1"]\n`);
    const evilA = evil.outputs[0] as typeof A;
    const forgeries: { name: string; registry?: string; message: ResultMessage; expected: string }[] = [
      { name: 'forged-digest', message: { v: 1, outputs: [{ ...A, digest: realOutput('ssl').digest }] }, expected: `, but ${pushed.host}/team/a:v1 holds ${A.digest}, not the reported ${realOutput('ssl').digest}` },
      { name: 'forged-ref', message: { v: 1, outputs: [{ ...A, ref: 'registry.example/elsewhere/a:v1' }] }, expected: `, but its ref registry.example/elsewhere/a:v1 is not where the build publishes it: ${pushed.host}/team/a:v1, under spec.output.registry ${pushed.host}/team` },
      { name: 'forged-name', message: { v: 1, outputs: [{ ...A, name: 'B' }] }, expected: ', but it is not a published layer of the recipe' },
      { name: 'forged-missing', message: { v: 1, outputs: real.outputs.filter((output) => output.name !== 'A') }, expected: 'the build reported no output for A, which the recipe publishes; nothing is recorded' },
      { name: 'forged-inputs', message: { v: 1, outputs: [{ ...A, inputs: (A.inputs ?? []).map((input) => ({ ...input, digest: evilA.digest })) }] }, expected: ', but the reported inputs differ from the image\'s provenance' },
      {
        name: 'forged-provenance',
        registry: `${pushed.host}/evil`,
        message: evil,
        expected: `, but its provenance names the applied inputs [docker://${pushed.host}/team/python3:v1], the recipe's are [docker://${pushed.host}/evil/ssl:v1, docker://${pushed.host}/evil/python3:v1]`,
      },
    ];
    for (const forgery of forgeries) await createStackerfile(a, ns, forgery.name, { recipe: recipe(), output: { ...output(), ...(forgery.registry === undefined ? {} : { registry: forgery.registry }) } });
    for (const forgery of forgeries) {
      await endPod(await eventuallyBuild(a, ns, forgery.name, 'Running', (b) => b.status?.podName !== undefined), 0, 'Completed', encodeResultMessage(forgery.message));
    }
    for (const forgery of forgeries) {
      const failed = await eventuallyBuild(a, ns, forgery.name, 'finished', (b) => b.status?.phase === 'Succeeded' || b.status?.phase === 'Failed');
      assert.equal(failed.status?.phase, 'Failed', `${forgery.name} was recorded: ${JSON.stringify(failed.status?.outputs)}`);
      assert.ok(failed.status?.message?.startsWith('the build reported '), failed.status?.message);
      assert.ok(failed.status?.message?.includes(forgery.expected), `${forgery.name}: ${failed.status?.message}`);
      assert.equal(failed.status?.outputs, undefined);
      const stackerfile = await eventually(`${forgery.name} Stalled`, async () => {
        const sf = await getStackerfile(a, ns, forgery.name);
        return sf.status?.conditions?.some((c) => c.type === 'Stalled' && c.status === 'True') ? sf : undefined;
      });
      assert.deepEqual(stackerfile.status?.images ?? [], [], 'no image recorded');
    }
  });

  test('a Stackerfile with a 253-character name gets a pod and a recipe ConfigMap whose names and labels fit the API\'s limits', async () => {
    const name = `${'b'.repeat(200)}.${'c'.repeat(52)}`;
    await createStackerfile(a, ns, name, { recipe: seeds, output: { registry: '127.0.0.1:5000/team' } });
    const running = await eventuallyBuild(a, ns, name, 'Running with a pod', (b) => b.status?.phase === 'Running' && b.status.podName !== undefined);
    const [pod] = await podsOf(a, ns, running.metadata?.name ?? '');
    assert.equal(pod?.metadata?.name, running.status?.podName);
    for (const value of Object.values(pod?.metadata?.labels ?? {})) assert.ok(value.length <= 63, value);
    assert.ok((pod?.metadata?.name ?? '').length <= 63);
    const configMap = pod?.spec?.volumes?.find((volume) => volume.name === 'recipe')?.configMap?.name ?? '';
    assert.equal((await a.core.readNamespacedConfigMap({ namespace: ns, name: configMap })).data?.['stacker.yaml'], seeds);
    // The result is checked against the registry, where nothing was pushed: a failure report keeps the test to names.
    await endPod(running, 1, 'Error', encodeResultMessage({ v: 1, error: { layer: 'A', step: 'run', code: 'RUN_FAILED', message: 'exit 1', lastLines: [] } }));
    const failed = await eventuallyBuild(a, ns, name, 'Failed', (b) => b.status?.phase === 'Failed');
    assert.match(failed.status?.message ?? '', /exit 1/);
  });

  test('a missing push Secret fails the build before any pod, naming spec.output.pushSecretRef and the fix', async () => {
    await createStackerfile(a, ns, 'no-secret', { recipe: seeds, output: { registry: '127.0.0.1:5000/team', pushSecretRef: { name: 'regcred' } } });
    const failed = await eventuallyBuild(a, ns, 'no-secret', 'Failed', (b) => b.status?.phase === 'Failed');
    assert.match(failed.status?.message ?? '', /^spec\.output\.pushSecretRef: Secret builds\/regcred does not exist; create it \(kubectl create secret docker-registry regcred/);
    assert.deepEqual(await podsOf(a, ns, failed.metadata?.name ?? ''), []);
  });
  /** The conditions Stalled of a Stackerfile, once it is Stalled. */
  const eventuallyStalled = (name: string) =>
    eventually(`${name} Stalled`, async () => (await getStackerfile(a, ns, name)).status?.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True'));
  const eventsOf = async (name: string) => (await a.core.listNamespacedEvent({ namespace: ns, fieldSelector: `involvedObject.name=${name}` })).items;

  test('a Stackerfile asking for a builder image the cluster admin did not allow, or for btrfs, is Stalled naming the field; no ImageBuild, no pod', async () => {
    await createStackerfile(a, ns, 'own-image', { recipe: seeds, output: { registry: '127.0.0.1:5000/team' }, builder: { image: 'docker.io/library/alpine:latest' } });
    await createStackerfile(a, ns, 'btrfs', { recipe: seeds, output: { registry: '127.0.0.1:5000/team' }, builder: { storage: 'btrfs' } });
    const image = await eventuallyStalled('own-image');
    assert.equal(image.reason, 'BuilderImageNotAllowed');
    assert.match(image.message, /^spec\.builder\.image docker\.io\/library\/alpine:latest is not an allowed builder image \(allowed: registry\.example\/restack\/builder:0\.1\.0, registry\.example\/restack\/builder:0\.2\.0-rc1\)/);
    const btrfs = await eventuallyStalled('btrfs');
    assert.equal(btrfs.reason, 'StorageNotSupported');
    assert.match(btrfs.message, /^spec\.builder\.storage btrfs is not supported in build pods/);
    assert.deepEqual(await buildsOf(a, ns, 'own-image'), []);
    assert.deepEqual(await buildsOf(a, ns, 'btrfs'), []);
    assert.deepEqual((await eventsOf('own-image')).map((e) => [e.type, e.reason]), [['Warning', 'BuilderImageNotAllowed']]);
  });

  test('a build pod the API server refuses (the admission policy, a 422) fails its ImageBuild with the API\'s message and an Event, once', async () => {
    // The operator allows this image; the policy's parameters do not.
    await createStackerfile(a, ns, 'policy', { recipe: seeds, output: { registry: '127.0.0.1:5000/team' }, builder: { image: allowedByOperatorOnly } });
    await createStackerfile(a, ns, 'invalid', { recipe: seeds, output: { registry: '127.0.0.1:5000/team' }, builder: { nodeSelector: { 'not a label key': 'x' } } });
    const policy = await eventuallyBuild(a, ns, 'policy', 'Failed', (b) => b.status?.phase === 'Failed');
    assert.match(policy.status?.message ?? '', /^the API server refused the build pod builds\/policy-1-[0-9a-f]{6}-build: .*ValidatingAdmissionPolicy 'restack-build-pods' .* denied request: a restack build pod runs an allowed builder image/);
    const invalid = await eventuallyBuild(a, ns, 'invalid', 'Failed', (b) => b.status?.phase === 'Failed');
    assert.match(invalid.status?.message ?? '', /^the API server refused the build pod builds\/invalid-1-[0-9a-f]{6}-build: Pod "invalid-1-[0-9a-f]{6}-build" is invalid: spec\.nodeSelector: Invalid value: "not a label key"/);
    for (const build of [policy, invalid]) {
      assert.deepEqual(await podsOf(a, ns, build.metadata?.name ?? ''), []);
      const events = await eventsOf(build.metadata?.name ?? '');
      assert.deepEqual(events.map((e) => [e.type, e.reason]), [['Warning', 'Failed']]);
      assert.equal(events[0]?.message, build.status?.message);
    }
    assert.match((await eventuallyStalled('invalid')).message, /spec\.nodeSelector: Invalid value/);
  });

  test('a build pod that never starts fails once its start timeout passes, with the scheduler\'s reason', async () => {
    await createStackerfile(a, ns, 'nowhere', { recipe: seeds, output: { registry: '127.0.0.1:5000/team' }, builder: { nodeSelector: { 'restack.test/no-such-node': 'true' } } });
    const running = await eventuallyBuild(a, ns, 'nowhere', 'Running', (b) => b.status?.podName !== undefined);
    const failed = await eventuallyBuild(a, ns, 'nowhere', 'Failed', (b) => b.status?.phase === 'Failed', 60_000);
    assert.match(failed.status?.message ?? '', /^the build pod builds\/nowhere-1-[0-9a-f]{6}-build did not start within 15s: not scheduled: Unschedulable: 0\/\d+ nodes are available: .*node affinity\/selector/);
    assert.match(failed.status?.message ?? '', /\nFailedScheduling: 0\/\d+ nodes are available/, "the pod's Warning Events follow");
    await eventually('the stuck pod deleted', async () => ((await podsOf(a, ns, running.metadata?.name ?? '')).every((pod) => pod.metadata?.deletionTimestamp !== undefined) ? true : undefined));
  });

  test('a build pod whose hostUsers: false the API server dropped is deleted at once and its build fails, saying why', async () => {
    // A namespace outside the admission policy (which would refuse such a pod itself), where a
    // mutating webhook drops hostUsers as an API server without user namespaces for pods does.
    const dropped = 'dropped-host-users';
    const webhook = await startDroppingWebhook();
    let second: Manager | undefined;
    try {
      await a.core.createNamespace({ body: { metadata: { name: dropped, labels: { 'pod-security.kubernetes.io/enforce': 'privileged', 'restack.test/drop-host-users': 'true' } } } });
      await a.cluster.kubeConfig.makeApiClient(AdmissionregistrationV1Api).createMutatingWebhookConfiguration({
        body: {
          metadata: { name: 'drop-host-users' },
          webhooks: [{
            name: 'drop-host-users.restack.test',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            failurePolicy: 'Fail',
            clientConfig: { url: webhook.url, caBundle: webhook.caBundle },
            namespaceSelector: { matchLabels: { 'restack.test/drop-host-users': 'true' } },
            rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'] }],
          }],
        },
      });
      second = await startManager(a.cluster, dropped, podExecutor(), impersonating(a.cluster, operatorUser));
      await createStackerfile(a, dropped, 'no-userns', { recipe: seeds, output: { registry: '127.0.0.1:5000/team' } });
      const failed = await eventually('the build Failed', async () => {
        const [build] = await buildsOf(a, dropped, 'no-userns');
        return build?.status?.phase === 'Failed' ? build : undefined;
      });
      assert.match(failed.status?.message ?? '', /^the API server dropped hostUsers: false from the build pod dropped-host-users\/no-userns-1-[0-9a-f]{6}-build \(user namespaces for pods are off: .*\); the pod was deleted: without a user namespace its CAP_SYS_ADMIN would be the node's/);
      await eventually('the pod gone', async () => ((await podsOf(a, dropped, failed.metadata?.name ?? '')).length === 0 ? true : undefined));
      assert.deepEqual((await a.core.listNamespacedEvent({ namespace: dropped, fieldSelector: `involvedObject.name=${failed.metadata?.name}` })).items.map((e) => e.reason), ['Failed']);
    } finally {
      await second?.stop();
      await webhook.stop();
    }
  });

  test('a push Secret deleted while the build pod waits to start fails the build at once, naming spec.output.pushSecretRef', async () => {
    const dockerConfig = Buffer.from(JSON.stringify({ auths: {} })).toString('base64');
    await a.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'short-lived' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': dockerConfig } } });
    await createStackerfile(a, ns, 'secret-gone', {
      recipe: seeds,
      output: { registry: '127.0.0.1:5000/team', pushSecretRef: { name: 'short-lived' } },
      builder: { nodeSelector: { 'restack.test/no-such-node': 'true' } },
    });
    await eventuallyBuild(a, ns, 'secret-gone', 'Running', (b) => b.status?.podName !== undefined);
    await a.core.deleteNamespacedSecret({ namespace: ns, name: 'short-lived' });
    const failed = await eventuallyBuild(a, ns, 'secret-gone', 'Failed', (b) => b.status?.phase === 'Failed');
    assert.match(failed.status?.message ?? '', /^the build pod builds\/secret-gone-1-[0-9a-f]{6}-build cannot start: spec\.output\.pushSecretRef: Secret builds\/short-lived does not exist; create it/);
  });
});


describe('the local executor runs the real restack build', { skip: skip ?? securedSkip }, () => {
  const ns = 'local-build';
  const running = registry as RunningRegistry;
  const secured = securedRegistry as RunningRegistry;
  let a: Api;
  let manager: Manager | undefined;
  after(async () => {
    await manager?.stop();
    await running.stop();
    await secured.stop();
    await a?.cluster.stop();
  });

  test('a busybox recipe builds and pushes; the ImageBuild records digests that exist in the registry', async () => {
    a = apiOf(await useCluster());
    await installCrds(a.cluster);
    await a.core.createNamespace({ body: { metadata: { name: ns } } });
    const base = await pushBusyboxBase(`docker://${running.host}/base/busybox:latest`);
    manager = await startManager(a.cluster, ns, new LocalExecutor([process.execPath, cli, 'build']));
    const recipe = `hello:\n  from: {type: docker, url: "docker://${running.host}/base/busybox:latest"}\n  run: ["echo \${{GREETING}} > /hello"]\n`;
    await createStackerfile(a, ns, 'hello', { recipe, substitutions: { GREETING: 'hi' }, output: { registry: `${running.host}/team`, tags: ['v1'] } });

    const build = await eventuallyBuild(a, ns, 'hello', 'finished', (b) => b.status?.phase === 'Succeeded' || b.status?.phase === 'Failed', 180_000);
    assert.equal(build.status?.phase, 'Succeeded', build.status?.message);
    const [output, ...more] = build.status?.outputs ?? [];
    assert.equal(more.length, 0);
    assert.equal(output?.ref, `${running.host}/team/hello:v1`);
    assert.deepEqual(output?.inputs, [{ ref: `docker://${running.host}/base/busybox:latest`, role: 'from', digest: base }]);
    const manifest = await fetch(`${running.url}/v2/team/hello/manifests/${output?.digest}`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(manifest.status, 200);
    assert.equal(manifest.headers.get('docker-content-digest'), output?.digest);
    const tagged = await fetch(`${running.url}/v2/team/hello/manifests/v1`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(tagged.headers.get('docker-content-digest'), output?.digest);
  });

  test('spec.output.pushSecretRef: the Secret\'s docker config lets the build push to a registry that needs a login', async () => {
    const auth = Buffer.from(`${pushUser.name}:${pushUser.password}`).toString('base64');
    const dockerConfig = JSON.stringify({ auths: { [secured.host]: { auth } } });
    await a.core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'regcred' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(dockerConfig).toString('base64') } } });
    const recipe = `hello:\n  from: {type: docker, url: "docker://${running.host}/base/busybox:latest"}\n  run: ["echo secured > /hello"]\n`;
    await createStackerfile(a, ns, 'secured', { recipe, output: { registry: `${secured.host}/team`, pushSecretRef: { name: 'regcred' } } });

    const build = await eventuallyBuild(a, ns, 'secured', 'finished', (b) => b.status?.phase === 'Succeeded' || b.status?.phase === 'Failed', 180_000);
    assert.equal(build.status?.phase, 'Succeeded', build.status?.message);
    const digestPushed = build.status?.outputs?.[0]?.digest ?? '';
    const head = (headers: Record<string, string>) => fetch(`${secured.url}/v2/team/hello/manifests/${digestPushed}`, { method: 'HEAD', headers: { Accept: 'application/vnd.oci.image.manifest.v1+json', ...headers } });
    assert.equal((await head({})).status, 401, 'the registry needs the login');
    assert.equal((await head({ Authorization: `Basic ${auth}` })).status, 200);
  });
});
