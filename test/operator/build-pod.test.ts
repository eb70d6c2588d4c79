import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { execa } from 'execa';
import { CoreV1Api, type V1Pod } from '@kubernetes/client-node';
import { buildPod, type BuildPodInput } from '../../src/operator/build-pod.ts';
import { useCluster, type Cluster } from '../cluster/harness.ts';

const root = join(import.meta.dirname, '..', '..');
const input: BuildPodInput = {
  imageBuild: { name: 'seeds-1-abc12', namespace: 'builds', uid: '0c4ad6c4-3c4e-4d4e-9d9f-000000000001' },
  stackerfileName: 'seeds',
  builderImage: 'registry.example/restack/builder:0.1.0',
  recipeConfigMap: 'seeds-1-abc12-recipe',
  push: 'docker://registry.example/team',
  tags: ['latest', 'v1'],
  substitutions: { PYVER: '3.12' },
  insecure: false,
  pushSecretName: 'regcred',
  resources: { limits: { memory: '2Gi' } },
  storage: 'overlay',
};

test('the build pod, field by field', () => {
  const pod = buildPod(input);
  const spec = pod.spec!;
  const container = spec.containers[0]!;
  assert.equal(spec.hostUsers, false);
  assert.equal(spec.hostNetwork, undefined);
  assert.equal(spec.hostPID, undefined);
  assert.equal(spec.hostIPC, undefined);
  assert.equal(spec.restartPolicy, 'Never');
  assert.equal(spec.automountServiceAccountToken, false);
  assert.deepEqual(container.securityContext, {
    runAsUser: 0,
    runAsGroup: 0,
    runAsNonRoot: false,
    privileged: false,
    allowPrivilegeEscalation: false,
    capabilities: { add: ['SYS_ADMIN'], drop: ['NET_RAW'] },
    procMount: 'Unmasked',
    seccompProfile: { type: 'RuntimeDefault' },
    appArmorProfile: { type: 'Unconfined' },
  });
  assert.deepEqual(spec.volumes?.map((v) => Object.keys(v).filter((k) => k !== 'name')[0]), ['configMap', 'emptyDir', 'secret']);
  assert.ok(spec.volumes?.every((v) => v.hostPath === undefined));
  assert.deepEqual(container.args, [
    'build', '--file', '/restack/recipe/stacker.yaml', '--storage', 'overlay', '--roots-dir', '/var/lib/restack/roots',
    '--oci-dir', '/var/lib/restack/oci', '--push', 'docker://registry.example/team', '--tag', 'latest', '--tag', 'v1',
    '--substitute', 'PYVER=3.12', '--termination-log', '/dev/termination-log', '--json',
  ]);
  assert.equal(container.terminationMessagePath, '/dev/termination-log', 'where --termination-log writes the result');
  assert.deepEqual(container.env, [
    { name: 'HOME', value: '/var/lib/restack/home' },
    { name: 'REGISTRY_AUTH_FILE', value: '/restack/auth/config.json' },
  ]);
  assert.equal(container.terminationMessagePolicy, 'FallbackToLogsOnError');
  assert.deepEqual(pod.metadata?.ownerReferences?.[0], { apiVersion: 'restack.dev/v1alpha1', kind: 'ImageBuild', name: 'seeds-1-abc12', uid: input.imageBuild.uid, controller: true, blockOwnerDeletion: true });
  assert.equal(pod.metadata?.labels?.['app.kubernetes.io/component'], 'restack-build');
  assert.deepEqual(container.resources, { limits: { memory: '2Gi' } });
});

test('a signing Stackerfile\'s build pod mounts only the key file, passes the password through the environment, and names its image as the builder', () => {
  const pod = buildPod({ ...input, signingSecretName: 'signing' });
  const container = pod.spec!.containers[0]!;
  const args = container.args ?? [];
  const at = args.indexOf('--sign-key');
  assert.deepEqual(args.slice(at, at + 4), ['--sign-key', '/restack/signing/cosign.key', '--builder-id', 'docker://registry.example/restack/builder:0.1.0']);
  assert.deepEqual(container.env?.at(-1), { name: 'COSIGN_PASSWORD', valueFrom: { secretKeyRef: { name: 'signing', key: 'cosign.password', optional: true } } });
  assert.deepEqual(container.volumeMounts?.at(-1), { name: 'signing-key', mountPath: '/restack/signing', readOnly: true });
  assert.deepEqual(pod.spec!.volumes?.at(-1), { name: 'signing-key', secret: { secretName: 'signing', items: [{ key: 'cosign.key', path: 'cosign.key' }], defaultMode: 0o400 } });
});

test('a Stackerfile with a cache repository gives its build pods --cache-repo', () => {
  const args = buildPod({ ...input, cacheRepository: 'docker://registry.example/team/cache' }).spec!.containers[0]!.args ?? [];
  assert.deepEqual(args.slice(args.indexOf('--cache-repo'), args.indexOf('--cache-repo') + 2), ['--cache-repo', 'docker://registry.example/team/cache']);
});

describe('the build pod on a real API server with Pod Security and the admission policy', () => {
  let cluster: Cluster;
  let core: CoreV1Api;
  before(async () => {
    cluster = await useCluster();
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, 'apply', '-f', join(root, 'config', 'admission')]);
    for (const [name, level, builds] of [['builds', 'privileged', 'true'], ['baseline-builds', 'baseline', 'false']] as const) {
      await core.createNamespace({ body: { metadata: { name, labels: { 'pod-security.kubernetes.io/enforce': level, 'restack.dev/builds': builds } } } });
    }
  });
  after(() => cluster?.stop());

  const inNamespace = (namespace: string, change: (pod: V1Pod) => void = () => {}): V1Pod => {
    const pod = buildPod({ ...input, imageBuild: { ...input.imageBuild, namespace } });
    delete pod.metadata!.ownerReferences;
    change(pod);
    return pod;
  };
  const rejection = async (pod: V1Pod): Promise<string> => {
    try {
      await core.createNamespacedPod({ namespace: pod.metadata!.namespace!, body: pod, dryRun: 'All' });
      return '';
    } catch (error) {
      return String((error as { body?: unknown }).body ?? error);
    }
  };
  /** The policy is compiled, and a new namespace's labels reach Pod Security, a moment later: ask until they answer. */
  const eventuallyRejected = async (pod: V1Pod, pattern: RegExp) => {
    const deadline = Date.now() + 20_000;
    let last = '';
    while (Date.now() < deadline) {
      last = await rejection(pod);
      if (pattern.test(last)) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.fail(`expected a rejection matching ${pattern}, last answer: ${last || 'admitted'}`);
  };

  test('a baseline namespace rejects the build pod: the level it needs is privileged', async () => {
    await eventuallyRejected(inNamespace('baseline-builds'), /violates PodSecurity .{0,2}baseline:latest.{0,2}: forbidden AppArmor profile.*SYS_ADMIN.*procMount/);
  });

  test('the policy rejects the same pod with hostUsers: true, with privileged: true, or with a hostPath', async () => {
    // An unmasked /proc is only valid with hostUsers: false, so the shared-namespace variant asks for the default /proc.
    const withHostUsers = inNamespace('builds', (pod) => {
      pod.spec!.hostUsers = true;
      pod.spec!.containers[0]!.securityContext!.procMount = 'Default';
    });
    await eventuallyRejected(withHostUsers, /must set hostUsers: false/);
    const privileged = inNamespace('builds', (pod) => {
      pod.spec!.containers[0]!.securityContext!.privileged = true;
      delete pod.spec!.containers[0]!.securityContext!.allowPrivilegeEscalation;
    });
    await eventuallyRejected(privileged, /privileged containers are not allowed/);
    await eventuallyRejected(inNamespace('builds', (pod) => pod.spec!.volumes!.push({ name: 'host', hostPath: { path: '/' } })), /hostPath volumes are not allowed/);
    await eventuallyRejected(inNamespace('builds', (pod) => pod.spec!.containers[0]!.securityContext!.capabilities!.add!.push('NET_ADMIN')), /only capability .* is SYS_ADMIN/);
  });

  test('the privileged-level build namespace with the policy admits the build pod, signing or not', async () => {
    assert.equal(await rejection(inNamespace('builds')), '');
    const signing = buildPod({ ...input, signingSecretName: 'signing' });
    delete signing.metadata!.ownerReferences;
    assert.equal(await rejection(signing), '');
    const created = await core.createNamespacedPod({ namespace: 'builds', body: inNamespace('builds') });
    assert.equal(created.spec?.hostUsers, false);
  });
});
