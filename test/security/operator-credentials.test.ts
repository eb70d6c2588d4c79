// Hostile input, the operator's credentials: a Stackerfile without spec.output.pushSecretRef must
// not write with the operator's own registry login (the chart's registryCredentialsSecret, here
// $REGISTRY_AUTH_FILE of this process, which runs the operator). A real htpasswd registry only
// the operator's login can write, the real API server, the real swap.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { pino } from 'pino';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import { installCrds } from '../operator/install-crds.ts';
import { makeImage, makeLayer, writeImage } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered, pushSeeds, type SeedImages } from '../swap/seeds.ts';
import { openReferences } from '../../src/engine/open-reference.ts';
import { LayoutStore } from '../../src/oci/layout.ts';
import { LocalExecutor } from '../../src/operator/executor-local.ts';
import { DependencyImages } from '../../src/operator/swap-runner.ts';
import type { ImageBuild, Stackerfile } from '../../src/operator/kube.ts';
import { Manager } from '../../src/operator/manager.ts';

const api = { group: 'restack.dev', version: 'v1alpha1' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const ns = 'tenant-credentials';
const operatorLogin = { user: 'operator', password: 'the operator checks inputs' };
test('a dependency read for one Stackerfile\'s credentials never serves another reader', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'restack-dependency-cache-'));
  try {
    const digest = (await writeImage(new LayoutStore(dir), '', makeImage({ layers: [await makeLayer({ 'usr/bin/python3': 'python 3.12\n' })] }), 'v1')).digest;
    const dependency = openReferences()(`oci:${dir}@${digest}`);
    const cache = new DependencyImages();
    const read = cache.get(dependency, 'Secret team-a/regcred');
    assert.equal(cache.get(dependency, 'Secret team-a/regcred'), read, 'read once for its reader');
    assert.notEqual(cache.get(dependency, 'anonymous'), read, 'another reader reads for itself');
    assert.equal((await read).top.descriptor.digest, digest);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const { service, skip } = await startOrSkip(() => startRegistry({ htpasswd: { [operatorLogin.user]: operatorLogin.password } }));

describe('a Stackerfile writes with its own Secret or with nothing, never with the operator\'s login', { timeout: 300_000, ...(skip === undefined ? {} : { skip }) }, () => {
  const registry = service as RunningRegistry;
  const prefix = `${registry.host}/team`;
  const dockerConfig = JSON.stringify({ auths: { [registry.host]: { auth: Buffer.from(`${operatorLogin.user}:${operatorLogin.password}`).toString('base64') } } });
  let authDir: string;
  const helper = 'restack-test-tenant';
  const helperMark = join(tmpdir(), `restack-helper-ran-${process.pid}`);
  let cluster: Cluster;
  let objects: CustomObjectsApi;
  let manager: Manager;
  let seeds: SeedImages;
  let python3Next: string;
  const previousAuthFile = process.env['REGISTRY_AUTH_FILE'];
  const previousPath = process.env['PATH'];

  before(async () => {
    // The operator's own login: the process's credential file, as the chart mounts it.
    authDir = await mkdtemp(join(tmpdir(), 'restack-operator-auth-'));
    process.env['REGISTRY_AUTH_FILE'] = join(authDir, 'config.json');
    await writeFile(process.env['REGISTRY_AUTH_FILE'], dockerConfig, { mode: 0o600 });
    seeds = await pushSeeds(`docker://${prefix}`);
    python3Next = await pushLayered(`docker://${prefix}`, 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'python 3.12\n' })]);
    cluster = await useCluster();
    objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await installCrds(cluster);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    const secret = (name: string, config: string) =>
      core.createNamespacedSecret({ namespace: ns, body: { metadata: { name }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(config).toString('base64') } } });
    await secret('regcred', dockerConfig);
    // A helper "program" a tenant would like the operator to run: it leaves a mark and answers the operator's login.
    await writeFile(join(authDir, `docker-credential-${helper}`), `#!/bin/sh\ntouch ${helperMark}\necho '{"Username":"${operatorLogin.user}","Secret":"${operatorLogin.password}"}'\n`);
    await chmod(join(authDir, `docker-credential-${helper}`), 0o755);
    process.env['PATH'] = `${authDir}:${previousPath ?? ''}`;
    await secret('helper-cred', JSON.stringify({ credHelpers: { [registry.host]: helper } }));
    manager = new Manager({ kubeConfig: cluster.kubeConfig, logger: pino({ level: process.env['RESTACK_TEST_LOG'] ?? 'silent' }), executor: new LocalExecutor(['true']), namespace: ns, metricsBindAddress: '127.0.0.1:0' });
    await manager.start();
  });
  after(async () => {
    await manager?.stop();
    await registry.stop();
    if (previousAuthFile === undefined) delete process.env['REGISTRY_AUTH_FILE'];
    else process.env['REGISTRY_AUTH_FILE'] = previousAuthFile;
    process.env['PATH'] = previousPath;
    if (authDir !== undefined) await rm(authDir, { recursive: true, force: true });
    await rm(helperMark, { force: true });
  });

  /** A suspended Stackerfile whose A is published (as a build would have left it), and a Swap ImageBuild of python3+1 into it. */
  async function swapInto(name: string, pushSecretRef?: { name: string }): Promise<ImageBuild> {
    const input = (image: string) => `docker://${prefix}/${image}:latest`;
    const recipe = `A:\n  from: {type: docker, url: "${input('base')}"}\n  apply: ["${input('ssl')}", "${input('python3')}"]\n  run: ["true"]\n`;
    const created = (await objects.createNamespacedCustomObject({
      ...api, namespace: ns, plural: 'stackerfiles',
      body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec: { recipe, suspend: true, output: { registry: prefix, insecure: true, ...(pushSecretRef === undefined ? {} : { pushSecretRef }) } } },
    })) as Stackerfile;
    const digestOf = async (image: string) => (await open(input(image)).store.resolve(`${prefix.slice(registry.host.length + 1)}/${image}`, 'latest')).digest;
    const inputs = [
      { ref: input('base'), role: 'from', digest: await digestOf('base') },
      { ref: input('ssl'), role: 'apply', digest: await digestOf('ssl') },
      { ref: input('python3'), role: 'apply', digest: 'sha256:'.padEnd(71, '0') },
    ];
    await objects.patchNamespacedCustomObjectStatus({ ...api, namespace: ns, plural: 'stackerfiles', name, body: { status: { images: [{ name: 'A', ref: `${prefix}/a:latest`, digest: seeds.a, inputs }] } } }, mergePatch);
    await objects.createNamespacedCustomObject({
      ...api, namespace: ns, plural: 'imagebuilds',
      body: {
        apiVersion: 'restack.dev/v1alpha1', kind: 'ImageBuild',
        metadata: { name: `${name}-swap`, ownerReferences: [{ apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', name, uid: created.metadata?.uid ?? '', controller: true }] },
        spec: { stackerfileRef: { name }, strategy: 'Swap', reason: 'ApplyUpdate', inputs: [{ ref: input('python3'), role: 'apply', digest: python3Next }], images: ['A'] },
      },
    });
    return eventually(`${name}'s swap finished`, async () => {
      const build = (await objects.getNamespacedCustomObject({ ...api, namespace: ns, plural: 'imagebuilds', name: `${name}-swap` })) as ImageBuild;
      return build.status?.phase === 'Succeeded' || build.status?.phase === 'Failed' ? build : undefined;
    });
  }

  test('without pushSecretRef the swap fails, saying the operator\'s login is for input checks; the tag stays', async () => {
    const build = await swapInto('no-secret');
    assert.equal(build.status?.phase, 'Failed', `the swap went through with the operator's login: ${build.status?.message}`);
    assert.match(build.status?.message ?? '', /^the registry refused the swap with no credentials: spec\.output\.pushSecretRef is not set, and the operator's own registry credentials serve input checks only: .*authentication required.*; set spec\.output\.pushSecretRef to a kubernetes\.io\/dockerconfigjson Secret that can read and push /);
    assert.equal((await open(`docker://${prefix}/a:latest`).store.resolve('team/a', 'latest')).digest, seeds.a, 'A is where it was');
  });

  test('with a pushSecretRef that can write, the same swap goes through', async () => {
    const build = await swapInto('with-secret', { name: 'regcred' });
    assert.equal(build.status?.phase, 'Succeeded', build.status?.message);
    assert.equal(build.status?.checks?.[0]?.result, 'Swapped', build.status?.message);
  });

  test('a Secret naming a credential helper is refused, naming the Secret and its key; the helper never runs', async () => {
    const build = await swapInto('tenant-helper', { name: 'helper-cred' });
    assert.equal(build.status?.phase, 'Failed', build.status?.message);
    assert.match(build.status?.message ?? '', new RegExp(`^spec\\.output\\.pushSecretRef: Secret ${ns}/helper-cred, key \\.dockerconfigjson: names credential helper programs, which are not run for it: credHelpers\\["${registry.host}"\\] \\(docker-credential-${helper}\\); put the login itself in "auths"`));
    await assert.rejects(access(helperMark), 'the operator ran the program the Secret named');
  });
});
