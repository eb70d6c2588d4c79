// Keeping images current, end to end: the operator with the real builder (`restack build` as a
// child process), a real registry and the real API server. python3+1 is swapped into A with no
// rebuild; an overlap and a base change rebuild; a registry that stops answering is a condition,
// not a build.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { pino } from 'pino';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import { installCrds } from './install-crds.ts';
import { appRecipe, depsRecipe } from './seeds-recipes.ts';
import { stackerfileProgress } from './stackerfile-progress.ts';
import { pushBusyboxBase } from '../build-engine/helpers.ts';
import { open } from '../swap/seeds.ts';
import { openReferences } from '../../src/engine/open-reference.ts';
import { credentialsFromDockerConfigJson } from '../../src/oci/registry/credential-provider.ts';
import { startFaultyProxy, type FaultyProxy } from '../services/faulty-proxy.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { installCosign, type Cosign } from '../services/cosign.ts';
import { restack } from '../cli/restack.ts';
import { readStoredImage } from '../../src/engine/images.ts';
import { LocalExecutor } from '../../src/operator/executor-local.ts';
import type { Stackerfile } from '../../src/operator/kube.ts';
import { Manager } from '../../src/operator/manager.ts';
import type { Descriptor } from '../../src/oci/types.ts';
import { deriveRecordKey, recordedLayerChanges } from '../../src/swap/layer-record.ts';

const root = join(import.meta.dirname, '..', '..');
const cli = join(root, 'src', 'cli', 'main.ts');
const api = { group: 'restack.dev', version: 'v1alpha1' };
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);
const ns = 'updates';

const { service: started, skip } = await startOrSkip(() => startRegistry());
const users = { alice: 'correct horse' };
const { service: privateRegistry, skip: privateSkip } = await startOrSkip(() => startRegistry({ htpasswd: users }));
const { service: cosign, skip: cosignSkip } = await startOrSkip(() => installCosign());

describe('the operator keeps images current', { timeout: 600_000, ...(skip === undefined ? {} : { skip }) }, () => {
  let cluster: Cluster;
  let registry: RunningRegistry;
  let proxy: FaultyProxy;
  let objects: CustomObjectsApi;
  let core: CoreV1Api;
  let manager: Manager;
  let prefix: string;
  let base: string;
  /** The operator's master layer record key: builds of each Stackerfile sign with a key derived from it. */
  const masterKey = randomBytes(32);

  const stackerfile = (name: string, recipe: string): Stackerfile => ({
    apiVersion: 'restack.dev/v1alpha1',
    kind: 'Stackerfile',
    metadata: { name, namespace: ns },
    spec: { recipe, output: { registry: prefix, tags: ['latest', 'stable'], insecure: true }, updates: { schedule: '*/2 * * * * *', onApplyUpdate: 'Swap', onBaseUpdate: 'Rebuild' } } as Stackerfile['spec'],
  });
  const { get, builds, condition, readyAfter } = stackerfileProgress(() => objects, ns);
  const layersOf = async (image: string) => (await readStoredImage(open(`docker://${prefix}/${image}:latest`))).platforms[0]?.image.manifest.layers.map((l) => l.digest) ?? [];

  before(async () => {
    registry = started as RunningRegistry;
    proxy = await startFaultyProxy(registry.url);
    prefix = `${proxy.host}/demo`;
    base = `docker://${prefix}/base:latest`;
    await pushBusyboxBase(base);
    cluster = await useCluster();
    objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await installCrds(cluster);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    // Reproducible layers: ssl rebuilt unchanged has the same digest.
    process.env['SOURCE_DATE_EPOCH'] = '1700000000';
    manager = new Manager({
      kubeConfig: cluster.kubeConfig,
      logger: pino({ level: process.env['RESTACK_TEST_LOG'] ?? 'silent' }),
      executor: new LocalExecutor([process.execPath, cli, 'build']),
      namespace: ns,
      metricsBindAddress: '127.0.0.1:0',
      updates: { jitterWindowMs: 0 },
      layerRecordKey: masterKey,
    });
    await manager.start();
  });
  after(async () => {
    await manager?.stop();
    await proxy?.stop();
    await registry?.stop();
    await privateRegistry?.stop();
    await cluster?.stop();
  });

  let before1: { a: string[]; python3: string[] };

  test('the seeds are built: ssl and python3, then A from them, with their inputs recorded', async () => {
    await objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: stackerfile('deps', depsRecipe(base, '3.11.9')) });
    await readyAfter('deps', (b) => b.spec.reason === 'Initial');
    await objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: stackerfile('app', appRecipe(base, prefix)) });
    const { sf } = await readyAfter('app', (b) => b.spec.reason === 'Initial');
    const a = sf.status?.images?.find((image) => image.name === 'A');
    assert.deepEqual(a?.inputs?.map((i) => `${i.role} ${i.ref}`).sort(), [`apply docker://${prefix}/python3:latest`, `apply docker://${prefix}/ssl:latest`, `from ${base}`]);
    before1 = { a: await layersOf('a'), python3: await layersOf('python3') };
    assert.equal(before1.a.length, 4, 'base, ssl, python3, own');
    // A's own layer carries its change record, under app's key: not under deps', another Stackerfile's.
    const own = (await readStoredImage(open(`docker://${prefix}/a:latest`))).platforms[0]?.image.manifest.layers.at(-1) as Descriptor;
    assert.ok(recordedLayerChanges(own, deriveRecordKey(masterKey, `${ns}/app`))?.some((entry) => entry.path === 'srv/A/README'));
    assert.equal(recordedLayerChanges(own, deriveRecordKey(masterKey, `${ns}/deps`)), undefined);
  });

  test('python3+1 is swapped into A within a poll: no build of A, a Swap ImageBuild records it, without reading A\'s own layer', async () => {
    proxy.clear();
    await objects.patchNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name: 'deps', body: { spec: { recipe: depsRecipe(base, '3.12.4') } } }, mergePatch);
    await readyAfter('deps', (b) => b.spec.reason === 'RecipeChange');
    const python3 = await layersOf('python3');
    const { sf, latest, all } = await readyAfter('app', (b) => b.spec.strategy === 'Swap');
    assert.deepEqual(all.map((b) => `${b.spec.strategy}/${b.spec.reason}`), ['Build/Initial', 'Swap/ApplyUpdate'], 'A was not rebuilt');
    const after = await layersOf('a');
    assert.deepEqual(after, [before1.a[0], before1.a[1], python3.at(-1), before1.a[3]], "[base, ssl, python3+1, A's own unchanged]");
    const check = latest.status?.checks?.find((c) => c.dependency.endsWith('/python3:latest'));
    assert.equal(check?.result, 'Swapped');
    assert.notEqual(check?.from, check?.to);
    const a = sf.status?.images?.find((image) => image.name === 'A');
    assert.equal(a?.lastChange?.strategy, 'Swap');
    const tagged = async (tag: string) => (await readStoredImage(open(`docker://${prefix}/a:${tag}`))).top.descriptor.digest;
    assert.deepEqual([await tagged('latest'), await tagged('stable')], [a?.digest, a?.digest], 'every tag of spec.output.tags moved to the swapped image');
    assert.equal(a?.inputs?.find((i) => i.ref.endsWith('/python3:latest'))?.digest, check?.to);
    assert.equal(latest.status?.outputs?.[0]?.before, all[0]?.status?.outputs?.find((o) => o.name === 'A')?.digest);
    const ownReads = proxy.requests.filter((request) => request.method === 'GET' && request.path.endsWith(`/blobs/${before1.a[3]}`));
    assert.deepEqual(ownReads, [], "the overlap check trusted A's record under app's key");
  });

  test("python3 touching a path A's own layer changed is a rebuild that names the path", async () => {
    const overlap = '    mkdir -p /srv/A\n    echo "python3 owns this" > /srv/A/README\n';
    await objects.patchNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name: 'deps', body: { spec: { recipe: depsRecipe(base, '3.12.5', overlap) } } }, mergePatch);
    const { latest, all } = await readyAfter('app', (b) => b.spec.strategy === 'Build' && b.spec.reason === 'ApplyUpdate');
    const refused = all.find((b) => b.spec.strategy === 'Swap' && b.status?.checks?.some((c) => c.result === 'Refused'));
    assert.equal(refused?.status?.checks?.find((c) => c.result === 'Refused')?.reason, 'Overlap');
    assert.match(latest.spec.cause ?? '', /srv\/A\/README/);
  });

  test('a new base rebuilds ssl, python3 and A with reason BaseUpdate', async () => {
    await pushBusyboxBase(base, { 'etc/motd': { type: 'file', content: Buffer.from('a new base\n') } });
    const deps = await readyAfter('deps', (b) => b.spec.reason === 'BaseUpdate');
    assert.equal(deps.latest.spec.strategy, 'Build');
    // A may be rebuilt before or after deps publish ssl and python3 on the new base: after, in one
    // rebuild; before, in a rebuild then an update for the new ssl and python3. Either ends current.
    const app = await readyAfter('app', (_, all) => all.some((b) => b.spec.reason === 'BaseUpdate' && b.status?.phase === 'Succeeded'));
    const rebuilt = app.all.find((b) => b.spec.reason === 'BaseUpdate');
    assert.equal(rebuilt?.spec.strategy, 'Build');
    assert.match(rebuilt?.spec.cause ?? '', /base/);
    // Before: the update for deps' new outputs may still be on its way; wait for A to reach them.
    const stale = (sf: Stackerfile, deps: Stackerfile) =>
      (deps.status?.images ?? [])
        .filter((dep) => sf.status?.images?.find((image) => image.name === 'A')?.inputs?.find((i) => i.ref.endsWith(`/${dep.name}:latest`))?.digest !== dep.digest)
        .map((dep) => dep.name);
    let lag: string[] = [];
    await eventually('A at the current ssl and python3', async () => {
      const [sf, deps] = await Promise.all([get('app'), get('deps')]);
      lag = stale(sf, deps);
      return lag.length === 0 && condition(sf, 'Ready')?.status === 'True' ? true : undefined;
    }, 120_000).catch((error: unknown) => {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; A lags behind: ${lag.join(', ')}`);
    });
  });

  test('a registry that stops answering is a condition, and no build starts', async () => {
    // The base change may still cascade (deps' new ssl and python3 into A): let it settle first.
    const settled = async () => {
      const ready = await Promise.all(['deps', 'app'].map(async (name) => condition(await get(name), 'Ready')?.status === 'True'));
      return ready.every(Boolean) ? (await builds('app')).length + (await builds('deps')).length : undefined;
    };
    const count = await eventually('no more updates', async () => {
      const before = await settled();
      await new Promise((resolve) => setTimeout(resolve, 3000));
      return before !== undefined && (await settled()) === before ? before : undefined;
    }, 120_000);
    proxy.inject({ path: '/', fault: { kind: 'status', status: 503 } });
    const down = await eventually('InputsAvailable=False', async () => {
      const sf = await get('app');
      return condition(sf, 'InputsAvailable')?.status === 'False' ? sf : undefined;
    });
    assert.match(condition(down, 'InputsAvailable')?.message ?? '', new RegExp(proxy.host.replace(/\./g, '\\.')));
    assert.equal(condition(down, 'Ready')?.status, 'True', `the images are still there: ${condition(down, 'Ready')?.message}`);
    await eventually('a RegistryUnreachable Event on app', async () => {
      const events = await core.listNamespacedEvent({ namespace: ns, fieldSelector: 'involvedObject.name=app' });
      return events.items.some((e) => e.type === 'Warning' && e.reason === 'RegistryUnreachable' && e.message?.includes(proxy.host)) ? true : undefined;
    });
    proxy.clear();
    await eventually('InputsAvailable=True', async () => (condition(await get('app'), 'InputsAvailable')?.status === 'True' ? true : undefined));
    assert.equal((await builds('app')).length + (await builds('deps')).length, count);
  });

  test('with a registry that needs credentials, spec.output.pushSecretRef serves the builds, the input checks and the swap', { skip: privateSkip }, async () => {
    // The operator runs in this process with no credentials of its own: only the Secret can open this registry.
    const host = privateRegistry?.host ?? '';
    const privatePrefix = `${host}/team`;
    const dockerConfig = JSON.stringify({ auths: { [host]: { auth: Buffer.from(`alice:${users.alice}`).toString('base64') } } });
    const privateBase = `docker://${privatePrefix}/base:latest`;
    await pushBusyboxBase(privateBase, {}, openReferences({ credentials: credentialsFromDockerConfigJson(dockerConfig) }));
    await core.createNamespacedSecret({ namespace: ns, body: { metadata: { name: 'regcred' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(dockerConfig).toString('base64') } } });
    const privateStackerfile = (name: string, recipe: string): Stackerfile => {
      const sf = stackerfile(name, recipe);
      return { ...sf, spec: { ...sf.spec, output: { registry: privatePrefix, tags: ['latest'], insecure: true, pushSecretRef: { name: 'regcred' } } } };
    };
    await objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: privateStackerfile('private-deps', depsRecipe(privateBase, '3.11.9')) });
    await readyAfter('private-deps', (b) => b.spec.reason === 'Initial');
    await objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: privateStackerfile('private-app', appRecipe(privateBase, privatePrefix)) });
    await readyAfter('private-app', (b) => b.spec.reason === 'Initial');
    await eventually('the inputs checked with the Secret', async () => (condition(await get('private-app'), 'InputsAvailable')?.reason === 'Checked' ? true : undefined));

    await objects.patchNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name: 'private-deps', body: { spec: { recipe: depsRecipe(privateBase, '3.12.4') } } }, mergePatch);
    const deps = await readyAfter('private-deps', (b) => b.spec.reason === 'RecipeChange');
    const python3 = deps.sf.status?.images?.find((image) => image.name === 'python3')?.digest;
    const { sf, all } = await readyAfter('private-app', (b) => b.spec.strategy === 'Swap');
    assert.deepEqual(all.map((b) => `${b.spec.strategy}/${b.spec.reason}/${b.status?.phase}`), ['Build/Initial/Succeeded', 'Swap/ApplyUpdate/Succeeded']);
    assert.equal(sf.status?.images?.[0]?.inputs?.find((i) => i.ref.endsWith('/python3:latest'))?.digest, python3);
  });

  test('with spec.output.signing, the builds and the operator\'s own swap sign and attest; cosign verifies the swapped A', { skip: cosignSkip }, async () => {
    const { run, verify, verifyAttestation } = cosign as Cosign;
    // The Secret exactly as cosign makes it, through the API server.
    const made = await run(['generate-key-pair', `k8s://${ns}/signing`], { env: { COSIGN_PASSWORD: 'operator secret', KUBECONFIG: cluster.kubeconfigPath } });
    assert.equal(made.exitCode, 0, made.stderr);
    const pub = join(await mkdtemp(join(tmpdir(), 'restack-signing-')), 'cosign.pub');
    const secret = await core.readNamespacedSecret({ namespace: ns, name: 'signing' });
    await writeFile(pub, Buffer.from(secret.data?.['cosign.pub'] ?? '', 'base64'));
    const signedPrefix = `${prefix}/signed`;
    const signedStackerfile = (name: string, recipe: string): Stackerfile => {
      const sf = stackerfile(name, recipe);
      return { ...sf, spec: { ...sf.spec, output: { registry: signedPrefix, tags: ['latest'], insecure: true, signing: { keySecretRef: { name: 'signing' } } } } };
    };
    await objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: signedStackerfile('signed-deps', depsRecipe(base, '3.11.9')) });
    await readyAfter('signed-deps', (b) => b.spec.reason === 'Initial');
    await objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: signedStackerfile('signed-app', appRecipe(base, signedPrefix)) });
    await readyAfter('signed-app', (b) => b.spec.reason === 'Initial');
    assert.equal((await verify(pub, `${signedPrefix}/python3:latest`)).exitCode, 0, 'the build signed python3');

    await objects.patchNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name: 'signed-deps', body: { spec: { recipe: depsRecipe(base, '3.12.4') } } }, mergePatch);
    await readyAfter('signed-deps', (b) => b.spec.reason === 'RecipeChange');
    const { sf } = await readyAfter('signed-app', (b) => b.spec.strategy === 'Swap');
    const swapped = `${signedPrefix}/a@${sf.status?.images?.[0]?.digest ?? ''}`;
    const verified = await verify(pub, swapped);
    assert.equal(verified.exitCode, 0, verified.stderr);
    assert.equal((await verifyAttestation(pub, swapped)).exitCode, 0);
    const provenance = await restack(['verify', `docker://${swapped}`, '--key', pub]);
    assert.equal(provenance.exitCode, 0, provenance.stderr);
    assert.match(provenance.stdout, /provenance https:\/\/restack\.dev\/swap\/v1/);
    // The operator swaps in the digest its watcher saw: the dependency is named pinned.
    assert.match(provenance.stdout, /python3:latest@sha256:[0-9a-f]{64} \(linux\/amd64\): sha256:[0-9a-f]{12} -> sha256:/);
  });
});
