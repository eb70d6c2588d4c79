import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CoreV1Api, KubeConfig, RbacAuthorizationV1Api, type V1Pod } from '@kubernetes/client-node';
import { buildPod, buildSeccompProfile, type BuildPodInput } from '../../src/operator/build-pod.ts';
import { useCluster, type Cluster } from '../cluster/harness.ts';
import { configuredBuilderImage, impersonating, operatorUser, setUpPodBuilds } from './build-namespace.ts';
const input: BuildPodInput = {
  imageBuild: { name: 'seeds-1-abc12', namespace: 'builds', uid: '0c4ad6c4-3c4e-4d4e-9d9f-000000000001' },
  stackerfileName: 'seeds',
  recipeConfigMap: 'seeds-1-abc12-recipe',
  push: 'docker://registry.example/team',
  tags: ['latest', 'v1'],
  substitutions: { PYVER: '3.12' },
  insecure: false,
  pushSecretName: 'regcred',
  settings: {
    image: 'registry.example/restack/builder:0.1.0',
    storage: 'overlay',
    resources: { requests: { cpu: '1' }, limits: { memory: '2Gi', 'ephemeral-storage': '10Gi' } },
    storageSizeLimit: '10Gi',
    activeDeadlineSeconds: 3600,
    nodeSelector: { 'restack.dev/builds': 'true' },
    tolerations: [{ key: 'restack.dev/builds', operator: 'Exists', effect: 'NoSchedule' }],
  },
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
    seccompProfile: { type: 'Localhost', localhostProfile: 'restack/build.json' },
    appArmorProfile: { type: 'Unconfined' },
  });
  assert.deepEqual(spec.volumes?.map((v) => Object.keys(v).filter((k) => k !== 'name')[0]), ['configMap', 'emptyDir', 'secret']);
  assert.deepEqual(spec.volumes?.[1]?.emptyDir, { sizeLimit: '10Gi' });
  assert.equal(spec.activeDeadlineSeconds, 3600);
  assert.deepEqual(spec.nodeSelector, { 'restack.dev/builds': 'true' });
  assert.deepEqual(spec.tolerations, [{ key: 'restack.dev/builds', operator: 'Exists', effect: 'NoSchedule' }]);
  assert.ok(spec.volumes?.every((v) => v.hostPath === undefined));
  assert.deepEqual(container.args, [
    'build', '--file', '/restack/recipe/stacker.yaml', '--storage', 'overlay', '--roots-dir', '/var/lib/restack/roots',
    '--oci-dir', '/var/lib/restack/oci', '--recipe-dir-only', '--push', 'docker://registry.example/team', '--tag', 'latest', '--tag', 'v1',
    '--substitute', 'PYVER=3.12', '--no-layer-record-key', '--termination-log', '/dev/termination-log', '--json',
  ]);
  assert.equal(container.terminationMessagePath, '/dev/termination-log', 'where --termination-log writes the result');
  assert.deepEqual(container.env, [
    { name: 'HOME', value: '/var/lib/restack/home' },
    { name: 'REGISTRY_AUTH_FILE', value: '/restack/auth/config.json' },
  ]);
  assert.equal(container.terminationMessagePolicy, 'FallbackToLogsOnError');
  assert.deepEqual(pod.metadata?.ownerReferences?.[0], { apiVersion: 'restack.dev/v1alpha1', kind: 'ImageBuild', name: 'seeds-1-abc12', uid: input.imageBuild.uid, controller: true, blockOwnerDeletion: true });
  assert.equal(pod.metadata?.labels?.['app.kubernetes.io/component'], 'restack-build');
  assert.deepEqual(container.resources, { requests: { cpu: '1' }, limits: { memory: '2Gi', 'ephemeral-storage': '10Gi' } });
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

test("a build with its Stackerfile's layer record key mounts the build's own Secret owner-only and names the file in the environment", () => {
  const pod = buildPod({ ...input, signingSecretName: 'signing', recordKeySecretName: 'seeds-1-abc12-record-key' });
  const container = pod.spec!.containers[0]!;
  assert.ok(!(container.args ?? []).some((arg) => arg.includes('layer-record-key')), 'the builder finds the key through the environment');
  assert.deepEqual(container.env?.at(-1), { name: 'RESTACK_LAYER_RECORD_KEY_FILE', value: '/restack/layer-record/layer-record.key' });
  assert.deepEqual(container.volumeMounts?.at(-1), { name: 'layer-record-key', mountPath: '/restack/layer-record', readOnly: true });
  assert.deepEqual(pod.spec!.volumes?.at(-1), {
    name: 'layer-record-key',
    secret: { secretName: 'seeds-1-abc12-record-key', items: [{ key: 'layer-record.key', path: 'layer-record.key' }], defaultMode: 0o400 },
  });
});

test('a Stackerfile with a cache repository gives its build pods --cache-repo', () => {
  const args = buildPod({ ...input, cacheRepository: 'docker://registry.example/team/cache' }).spec!.containers[0]!.args ?? [];
  assert.deepEqual(args.slice(args.indexOf('--cache-repo'), args.indexOf('--cache-repo') + 2), ['--cache-repo', 'docker://registry.example/team/cache']);
});

describe('the build pod on a real API server with Pod Security and the admission policy', () => {
  let cluster: Cluster;
  let admin: CoreV1Api;
  /** As the operator's ServiceAccount, the one identity the policy lets create pods in build namespaces. */
  let operator: CoreV1Api;
  before(async () => {
    cluster = await useCluster();
    admin = cluster.kubeConfig.makeApiClient(CoreV1Api);
    operator = impersonating(cluster, operatorUser).makeApiClient(CoreV1Api);
    await setUpPodBuilds(cluster, ['builds']);
    await admin.createNamespace({ body: { metadata: { name: 'baseline-builds', labels: { 'pod-security.kubernetes.io/enforce': 'baseline' } } } });
  });
  after(() => cluster?.stop());

  const inNamespace = (namespace: string, change: (pod: V1Pod) => void = () => {}): V1Pod => {
    const pod = buildPod({ ...input, imageBuild: { ...input.imageBuild, namespace }, settings: { ...input.settings, image: configuredBuilderImage } });
    delete pod.metadata!.ownerReferences;
    change(pod);
    return pod;
  };
  const rejection = async (pod: V1Pod, as: CoreV1Api = operator): Promise<string> => {
    try {
      await as.createNamespacedPod({ namespace: pod.metadata!.namespace!, body: pod, dryRun: 'All' });
      return '';
    } catch (error) {
      return String((error as { body?: unknown }).body ?? error);
    }
  };
  /** The policy is compiled, and a new namespace's labels reach Pod Security, a moment later: ask until they answer. */
  const eventuallyRejected = async (attempt: () => Promise<string>, pattern: RegExp) => {
    const deadline = Date.now() + 20_000;
    let last = '';
    while (Date.now() < deadline) {
      last = await attempt();
      if (pattern.test(last)) return;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    assert.fail(`expected a rejection matching ${pattern}, last answer: ${last || 'admitted'}`);
  };
  const rejected = (pod: V1Pod, pattern: RegExp) => eventuallyRejected(() => rejection(pod), pattern);

  test('a baseline namespace rejects the build pod: the level it needs is privileged', async () => {
    await rejected(inNamespace('baseline-builds'), /violates PodSecurity .{0,2}baseline:latest.{0,2}: forbidden AppArmor profile.*SYS_ADMIN.*procMount/);
  });

  test('the policy rejects the same pod with hostUsers: true, with privileged: true, with a hostPath, or with another capability', async () => {
    // An unmasked /proc is only valid with hostUsers: false, so the shared-namespace variant asks for the default /proc.
    const withHostUsers = inNamespace('builds', (pod) => {
      pod.spec!.hostUsers = true;
      pod.spec!.containers[0]!.securityContext!.procMount = 'Default';
    });
    await rejected(withHostUsers, /must set hostUsers: false/);
    const privileged = inNamespace('builds', (pod) => {
      pod.spec!.containers[0]!.securityContext!.privileged = true;
      delete pod.spec!.containers[0]!.securityContext!.allowPrivilegeEscalation;
    });
    await rejected(privileged, /privileged containers are not allowed/);
    await rejected(inNamespace('builds', (pod) => pod.spec!.volumes!.push({ name: 'host', hostPath: { path: '/' } })), /configMap, emptyDir and secret volumes only \(no hostPath/);
    await rejected(inNamespace('builds', (pod) => pod.spec!.containers[0]!.securityContext!.capabilities!.add!.push('NET_ADMIN')), /only capability .* is SYS_ADMIN/);
  });

  test('the policy rejects another image, another seccomp profile, a service account token, a projected volume', async () => {
    await rejected(
      inNamespace('builds', (pod) => (pod.spec!.containers[0]!.image = 'docker.io/library/alpine:latest')),
      /a restack build pod runs an allowed builder image \(registry\.example\/restack\/builder:0\.1\.0\), not docker\.io\/library\/alpine:latest/,
    );
    await rejected(inNamespace('builds', (pod) => (pod.spec!.containers[0]!.securityContext!.seccompProfile = { type: 'RuntimeDefault' })), /seccomp profile Localhost restack\/build\.json/);
    await rejected(inNamespace('builds', (pod) => (pod.spec!.containers[0]!.securityContext!.seccompProfile = { type: 'Localhost', localhostProfile: 'other.json' })), /seccomp profile Localhost restack\/build\.json/);
    await rejected(inNamespace('builds', (pod) => (pod.spec!.automountServiceAccountToken = true)), /sets automountServiceAccountToken: false/);
    await rejected(
      inNamespace('builds', (pod) => pod.spec!.volumes!.push({ name: 'token', projected: { sources: [{ serviceAccountToken: { path: 'token' } }] } })),
      /configMap, emptyDir and secret volumes only/,
    );
  });

  test('the policy rejects the generated build pod created by anyone but the operator', async () => {
    const rbac = cluster.kubeConfig.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({ namespace: 'builds', body: { metadata: { name: 'pod-creator' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['create'] }] } });
    await rbac.createNamespacedRoleBinding({
      namespace: 'builds',
      body: { metadata: { name: 'pod-creator' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pod-creator' }, subjects: [{ kind: 'ServiceAccount', name: 'restricted', namespace: 'default' }] },
    });
    const restricted = new KubeConfig();
    restricted.loadFromFile(cluster.restrictedKubeconfigPath);
    const tenant = restricted.makeApiClient(CoreV1Api);
    await eventuallyRejected(
      () => rejection(inNamespace('builds'), tenant),
      /pods in a restack build namespace are created by the restack operator \(system:serviceaccount:restack-system:restack-operator\) only, not by system:serviceaccount:default:restricted/,
    );
    assert.equal(await rejection(inNamespace('builds')), '', 'the same pod from the operator is admitted');
  });

  test('the privileged-level build namespace with the policy admits the build pod, signing or not, with its record key or not; an ephemeral container added to it is refused', async () => {
    assert.equal(await rejection(inNamespace('builds')), '');
    const signing = buildPod({ ...input, imageBuild: { ...input.imageBuild, namespace: 'builds' }, settings: { ...input.settings, image: configuredBuilderImage }, signingSecretName: 'signing', recordKeySecretName: 'seeds-1-abc12-record-key' });
    delete signing.metadata!.ownerReferences;
    assert.equal(await rejection(signing), '', 'with the signing key and the record key Secrets mounted');
    const created = await operator.createNamespacedPod({ namespace: 'builds', body: inNamespace('builds') });
    assert.equal(created.spec?.hostUsers, false);
    const name = created.metadata!.name!;
    const debug = (image: string) => async () => {
      try {
        const pod = await admin.readNamespacedPod({ namespace: 'builds', name });
        pod.spec!.ephemeralContainers = [{ name: 'debug', image, securityContext: { seccompProfile: { type: 'Localhost', localhostProfile: buildSeccompProfile } } }];
        await admin.replaceNamespacedPodEphemeralcontainers({ namespace: 'builds', name, body: pod });
        return '';
      } catch (error) {
        return String((error as { body?: unknown }).body ?? error);
      }
    };
    // Even with the builder image and the profile: a debug container would share the pod's SYS_ADMIN.
    await eventuallyRejected(debug(configuredBuilderImage), /ephemeral containers \(kubectl debug\) are not allowed in a restack build namespace/);
    await eventuallyRejected(debug('busybox'), /ephemeral containers \(kubectl debug\) are not allowed/);
  });
});
