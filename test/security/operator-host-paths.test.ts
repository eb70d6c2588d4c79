// Hostile input, the operator's own files and environment: a Stackerfile importing the operator's
// service account token is Stalled before any build; a local build's run step, even with
// build_env_passthrough [".*"], sees none of the operator's variables. The real API server, the
// real `restack build` under the local executor, a real registry.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { pino } from 'pino';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import { installCrds } from '../operator/install-crds.ts';
import { pushBusyboxBase } from '../build-engine/helpers.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { builderEnvironment, LocalExecutor } from '../../src/operator/executor-local.ts';
import type { ImageBuild, Stackerfile } from '../../src/operator/kube.ts';
import { Manager } from '../../src/operator/manager.ts';

const cli = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');
const api = { group: 'restack.dev', version: 'v1alpha1' };
const ns = 'tenant-host-paths';
const token = '/var/run/secrets/kubernetes.io/serviceaccount/token';

test('a local build\'s environment: PATH, locale, proxies, SOURCE_DATE_EPOCH and the names the admin adds; its own HOME', () => {
  const operator = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', https_proxy: 'http://proxy:3128', SOURCE_DATE_EPOCH: '1', KUBERNETES_SERVICE_HOST: '10.0.0.1', REGISTRY_AUTH_FILE: '/etc/restack/registry/config.json', HOME: '/home/restack', EXTRA: 'x', OTHER: 'y' };
  assert.deepEqual(builderEnvironment(operator, '/tmp/build/home', ['EXTRA']), { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', https_proxy: 'http://proxy:3128', SOURCE_DATE_EPOCH: '1', EXTRA: 'x', HOME: '/tmp/build/home' });
});

const { service, skip } = await startOrSkip(() => startRegistry());

describe('the operator keeps a tenant\'s recipe away from its files and environment', { timeout: 300_000, ...(skip === undefined ? {} : { skip }) }, () => {
  const registry = service as RunningRegistry;
  const planted = { RESTACK_OPERATOR_TOKEN: 'the operator\'s secret', KUBERNETES_SERVICE_HOST: '10.0.0.1', REGISTRY_AUTH_FILE: '/etc/restack/registry/config.json', RESTACK_TEST_PASSED: 'yes' };
  const previous = Object.fromEntries(Object.keys(planted).map((name) => [name, process.env[name]]));
  let cluster: Cluster;
  let objects: CustomObjectsApi;
  let core: CoreV1Api;
  let manager: Manager;

  before(async () => {
    await pushBusyboxBase(`docker://${registry.host}/base/busybox:latest`);
    cluster = await useCluster();
    objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await installCrds(cluster);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    // What an operator in a pod has: Kubernetes' variables, its credential file, a secret of its own.
    Object.assign(process.env, planted);
    manager = new Manager({
      kubeConfig: cluster.kubeConfig,
      logger: pino({ level: process.env['RESTACK_TEST_LOG'] ?? 'silent' }),
      executor: new LocalExecutor([process.execPath, cli, 'build'], { environment: ['RESTACK_TEST_PASSED'] }),
      namespace: ns,
      metricsBindAddress: '127.0.0.1:0',
    });
    await manager.start();
  });
  after(async () => {
    await manager?.stop();
    await registry.stop();
    for (const [name, value] of Object.entries(previous)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  const create = (name: string, recipe: string) =>
    objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec: { recipe, output: { registry: `${registry.host}/team` } } } });
  const buildsOf = async (name: string) =>
    ((await objects.listNamespacedCustomObject({ ...api, namespace: ns, plural: 'imagebuilds' })) as { items: ImageBuild[] }).items.filter((build) => build.spec.stackerfileRef.name === name);

  test('importing the service account token: Stalled, naming the layer and imports.0; no ImageBuild', async () => {
    await create('token-thief', `A:\n  from: {type: docker, url: "docker://${registry.host}/base/busybox:latest"}\n  imports: ["${token}"]\n`);
    const stalled = await eventually('Stalled', async () => {
      const sf = (await objects.getNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name: 'token-thief' })) as Stackerfile;
      return sf.status?.conditions?.find((c) => c.type === 'Stalled' && c.status === 'True');
    });
    assert.equal(stalled.reason, 'InvalidRecipe');
    assert.match(stalled.message, new RegExp(`: A\\.imports\\.0: "${token}" is an absolute path on the build machine; this build reads local files only inside the recipe's directory`));
    assert.deepEqual(await buildsOf('token-thief'), []);
  });

  test('a run step that passes every variable through sees none of the operator\'s, only what the admin allowed', async () => {
    const check = 'if env | grep -E "^(RESTACK_OPERATOR_TOKEN|KUBERNETES_|REGISTRY_AUTH_FILE)="; then exit 3; fi; test "$RESTACK_TEST_PASSED" = yes';
    await create('env-reader', `A:\n  from: {type: docker, url: "docker://${registry.host}/base/busybox:latest"}\n  build_env_passthrough: [".*"]\n  run: ['${check}']\n`);
    const build = await eventually('the build finished', async () => {
      const [found] = await buildsOf('env-reader');
      return found?.status?.phase === 'Succeeded' || found?.status?.phase === 'Failed' ? found : undefined;
    }, 180_000);
    assert.equal(build.status?.phase, 'Succeeded', `the run step saw the operator's environment: ${build.status?.message}`);
  });
});
