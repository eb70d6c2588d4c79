// The test cluster is a real control plane: CRDs, watches, status subresources, Jobs run to
// completion by kwok, Pod Security admission, and the pinned kubectl and helm against it.
import { after, before, describe, it, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { randomBytes } from 'node:crypto';
import {
  ApiException,
  ApiextensionsV1Api,
  BatchV1Api,
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  Watch,
  setHeaderOptions,
  type V1Pod,
} from '@kubernetes/client-node';
import { useCluster, type Cluster } from './harness.ts';
import { apiWrites, countsSince } from './api-requests.ts';

const run = promisify(execFile);
const pinned = Object.fromEntries(
  readFileSync(new URL('versions.env', import.meta.url), 'utf8')
    .split('\n')
    .filter((line) => /^[A-Z_]+=/.test(line))
    .map((line) => line.split('=', 2) as [string, string]),
);

/** Polls until `check` returns a value other than undefined; fails after `timeoutMs`. */
async function eventually<T>(description: string, check: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${description}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

const suffix = randomBytes(4).toString('hex');
let cluster: Cluster;
let core: CoreV1Api;

/** A namespace of this run, whose default service account exists (pods need it). */
async function createNamespace(t: TestContext, name: string, labels: Record<string, string> = {}): Promise<string> {
  const namespace = `${name}-${suffix}`;
  await core.createNamespace({ body: { metadata: { name: namespace, labels } } });
  t.after(() => core.deleteNamespace({ name: namespace }));
  await eventually(`service account ${namespace}/default`, () =>
    core.readNamespacedServiceAccount({ namespace, name: 'default' }).catch(() => undefined),
  );
  return namespace;
}

/**
 * Opens a watch, retrying while the apiserver answers 429 Too Many Requests, as it does until
 * the watch cache of a just-established custom resource is ready.
 */
async function openWatch(path: string, onEvent: (phase: string, object: any) => void): Promise<AbortController> {
  return eventually(`a watch on ${path}`, async () => {
    let refusal: { statusCode?: number } | undefined;
    const watch = await new Watch(cluster.kubeConfig).watch(path, {}, onEvent, (error) => {
      refusal ??= error ?? undefined;
    });
    if (refusal === undefined) return watch;
    if (refusal.statusCode === 429) return undefined;
    throw refusal;
  });
}

before(async () => {
  cluster = await useCluster();
  core = cluster.kubeConfig.makeApiClient(CoreV1Api);
});
after(() => cluster?.stop());

describe('custom resources', () => {
  const group = `t${suffix}.cluster-test.restack.dev`;
  const crdName = `widgets.${group}`;

  it('serves a CRD once Established, with watch, status patch and delete of its objects, each write counted in its metrics', async (t) => {
    const extensions = cluster.kubeConfig.makeApiClient(ApiextensionsV1Api);
    await extensions.createCustomResourceDefinition({
      body: {
        metadata: { name: crdName },
        spec: {
          group,
          scope: 'Namespaced',
          names: { plural: 'widgets', singular: 'widget', kind: 'Widget', listKind: 'WidgetList' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: {
                    spec: { type: 'object', properties: { size: { type: 'integer' } } },
                    status: { type: 'object', properties: { phase: { type: 'string' } } },
                  },
                },
              },
            },
          ],
        },
      },
    });
    t.after(() => extensions.deleteCustomResourceDefinition({ name: crdName }));
    await eventually(`CRD ${crdName} to be Established`, async () => {
      const crd = await extensions.readCustomResourceDefinition({ name: crdName });
      return crd.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') || undefined;
    });

    const namespace = await createNamespace(t, 'widgets');
    const seen: Array<{ phase: string; object: { status?: { phase?: string } } }> = [];
    const watching = await openWatch(`/apis/${group}/v1/namespaces/${namespace}/widgets`, (phase, object) =>
      seen.push({ phase, object }),
    );
    t.after(() => watching.abort());
    const sawEvent = (phase: string, statusPhase?: string) =>
      eventually(`a ${phase} watch event`, async () =>
        seen.find((e) => e.phase === phase && (statusPhase === undefined || e.object.status?.phase === statusPhase)),
      );

    const objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const coordinates = { group, version: 'v1', namespace, plural: 'widgets' };
    const writesBefore = await apiWrites(cluster, group);
    await objects.createNamespacedCustomObject({
      ...coordinates,
      body: { apiVersion: `${group}/v1`, kind: 'Widget', metadata: { name: 'one' }, spec: { size: 3 } },
    });
    await sawEvent('ADDED');

    const patched = await objects.patchNamespacedCustomObjectStatus(
      { ...coordinates, name: 'one', body: { status: { phase: 'Ready' } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    assert.equal(patched.status.phase, 'Ready');
    assert.equal(patched.spec.size, 3);
    await sawEvent('MODIFIED', 'Ready');

    await objects.deleteNamespacedCustomObject({ ...coordinates, name: 'one' });
    await sawEvent('DELETED');
    // The group is this run's own: nothing else writes it.
    assert.deepEqual(countsSince(writesBefore, await apiWrites(cluster, group)), { 'POST widgets': 1, 'PATCH widgets/status': 1, 'DELETE widgets': 1 });
  });
});

describe('workloads on the kwok node', () => {
  it('runs a Job: kwok takes its pod to Succeeded and the Job becomes Complete', async (t) => {
    const namespace = await createNamespace(t, 'jobs');
    const batch = cluster.kubeConfig.makeApiClient(BatchV1Api);
    await batch.createNamespacedJob({
      namespace,
      body: {
        metadata: { name: 'once' },
        spec: {
          backoffLimit: 0,
          template: {
            spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: 'registry.invalid/none:1' }] },
          },
        },
      },
    });
    const pod = await eventually('the Job pod to succeed', async () => {
      const pods = await core.listNamespacedPod({ namespace, labelSelector: 'job-name=once' });
      return pods.items.find((p) => p.status?.phase === 'Succeeded');
    });
    assert.equal(pod.spec?.nodeName, 'kwok-node');
    await eventually('the Job to be Complete', async () => {
      const job = await batch.readNamespacedJob({ namespace, name: 'once' });
      return job.status?.conditions?.some((c) => c.type === 'Complete' && c.status === 'True') || undefined;
    });
  });

  it("rejects a privileged pod in a namespace enforcing the baseline Pod Security level, admits a plain one", async (t) => {
    const namespace = await createNamespace(t, 'baseline', { 'pod-security.kubernetes.io/enforce': 'baseline' });
    const pod = (name: string, privileged: boolean): V1Pod => ({
      metadata: { name },
      spec: { containers: [{ name: 'main', image: 'registry.invalid/none:1', securityContext: { privileged } }] },
    });

    await assert.rejects(core.createNamespacedPod({ namespace, body: pod('privileged', true) }), (error) => {
      assert.ok(error instanceof ApiException);
      assert.equal(error.code, 403);
      const status = JSON.parse(String(error.body)) as { message?: string };
      assert.match(status.message ?? '', /violates PodSecurity "baseline:latest": privileged/);
      return true;
    });

    await core.createNamespacedPod({ namespace, body: pod('plain', false) });
    await eventually('the plain pod to be Running', async () => {
      const plain = await core.readNamespacedPod({ namespace, name: 'plain' });
      return plain.status?.phase === 'Running' || undefined;
    });
  });
});

describe('pinned command-line tools', () => {
  it('kubectl reports the pinned version for itself and for the running apiserver', async () => {
    const { stdout } = await run(join(cluster.binDir, 'kubectl'), [
      'version',
      '--kubeconfig',
      cluster.kubeconfigPath,
      '--output',
      'json',
    ]);
    const versions = JSON.parse(stdout);
    assert.equal(versions.clientVersion.gitVersion, pinned['KUBERNETES_VERSION']);
    assert.equal(versions.serverVersion.gitVersion, pinned['KUBERNETES_VERSION']);
  });

  it("helm reports the pinned version and installs a chart whose kubeVersion constraint needs the apiserver's real version", async (t) => {
    const work = await mkdtemp(join(tmpdir(), 'restack-helm-'));
    t.after(() => rm(work, { recursive: true, force: true }));
    const helmEnv = {
      ...process.env,
      HELM_CACHE_HOME: join(work, 'cache'),
      HELM_CONFIG_HOME: join(work, 'config'),
      HELM_DATA_HOME: join(work, 'data'),
    };
    const helm = (...args: string[]) => run(join(cluster.binDir, 'helm'), args, { env: helmEnv });

    const { stdout: version } = await helm('version', '--template', '{{.Version}}');
    assert.equal(version, pinned['HELM_VERSION']);

    const chart = join(work, 'chart');
    await mkdir(join(chart, 'templates'), { recursive: true });
    await writeFile(
      join(chart, 'Chart.yaml'),
      'apiVersion: v2\nname: probe\nversion: 0.1.0\nkubeVersion: ">= 1.34.0-0"\n',
    );
    await writeFile(
      join(chart, 'templates', 'configmap.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: probe\ndata:\n  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}\n',
    );
    const namespace = await createNamespace(t, 'helm');
    await helm('install', 'probe', chart, '--namespace', namespace, '--kubeconfig', cluster.kubeconfigPath, '--wait');
    const configMap = await core.readNamespacedConfigMap({ namespace, name: 'probe' });
    assert.equal(configMap.data?.['kubeVersion'], pinned['KUBERNETES_VERSION']);
  });
});
