import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { pino } from 'pino';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import { installCrds } from './install-crds.ts';
import { LocalExecutor } from '../../src/operator/executor-local.ts';
import { Manager, type ManagerOptions } from '../../src/operator/manager.ts';
import type { ImageBuild, Stackerfile } from '../../src/operator/kube.ts';

const root = join(import.meta.dirname, '..', '..');
const seeds = await readFile(join(root, 'test', 'fixtures', 'recipes', 'seeds-example.yaml'), 'utf8');
const api = { group: 'restack.dev', version: 'v1alpha1' };
const logger = pino({ level: 'silent' });

/**
 * TEST DOUBLE for the builder process (`restack build --json`): prints the JSON lines of that
 * contract, one build-done with an output per layer name given in FAKE_LAYERS.
 */
async function fakeBuilder(dir: string): Promise<string> {
  const path = join(dir, 'fake-restack-build.mjs');
  await writeFile(
    path,
    `#!/usr/bin/env node
const args = process.argv.slice(2);
const push = args[args.indexOf('--push') + 1];
console.log(JSON.stringify({ event: 'build-start', args }));
// --substitute FAIL=CODE:N:NAME fails the first N runs of NAME with the error code CODE.
const fail = args.find((arg) => arg.startsWith('FAIL='));
if (fail !== undefined) {
  const [code, times, name] = fail.slice(5).split(':');
  const fs = await import('node:fs');
  const counter = new URL('./runs-' + name, import.meta.url);
  const runs = Number(fs.existsSync(counter) ? fs.readFileSync(counter, 'utf8') : '0') + 1;
  fs.writeFileSync(counter, String(runs));
  if (runs <= Number(times)) {
    console.log(JSON.stringify({ event: 'error', code, message: 'run ' + runs + ' failed with ' + code }));
    process.exit(1);
  }
}
const provenance = { version: 1, base: null, applied: [], own: { layers: { start: 0, count: 1 } } };
const outputs = ['ssl', 'python3', 'A'].map((name, i) => {
  const digest = 'sha256:' + String(i).repeat(64);
  return { name, ref: 'oci:oci:' + name, digest, buildOnly: false, cached: false, provenance, pushed: [push + '/' + name.toLowerCase() + ':latest@' + digest] };
});
console.log(JSON.stringify({ event: 'build-done', outputs }));
`,
  );
  await chmod(path, 0o755);
  return path;
}

describe('the operator against a real API server', () => {
  let cluster: Cluster;
  let objects: CustomObjectsApi;
  let core: CoreV1Api;
  let builder: string;
  const managers: Manager[] = [];

  const startManager = async (namespace: string, extra: Partial<ManagerOptions> = {}) => {
    const manager = new Manager({
      kubeConfig: cluster.kubeConfig,
      logger,
      executor: new LocalExecutor([process.execPath, builder]),
      namespace,
      metricsBindAddress: '127.0.0.1:0',
      ...extra,
    });
    managers.push(manager);
    await manager.start();
    return manager;
  };
  const metric = async (manager: Manager, line: RegExp) => {
    const text = await (await fetch(`http://127.0.0.1:${manager.address().port}/metrics`)).text();
    return Number(text.match(line)?.[1] ?? 0);
  };
  const namespace = async (name: string) => {
    await core.createNamespace({ body: { metadata: { name } } });
    return name;
  };
  const createStackerfile = (ns: string, name: string, recipe: string) =>
    eventually('Stackerfile create', () =>
      objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec: { recipe, output: { registry: '127.0.0.1:5000/team' } } } }),
    );
  const getStackerfile = async (ns: string, name: string) => (await objects.getNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name })) as Stackerfile;
  const listBuilds = async (ns: string) => ((await objects.listNamespacedCustomObject({ ...api, namespace: ns, plural: 'imagebuilds' })) as { items: ImageBuild[] }).items;
  const condition = (sf: Stackerfile, type: string) => sf.status?.conditions?.find((c) => c.type === type);

  before(async () => {
    cluster = await useCluster();
    objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    builder = await fakeBuilder(await mkdtemp(join(tmpdir(), 'restack-operator-test-')));
    await installCrds(cluster);
  });
  after(async () => {
    await Promise.all(managers.map((m) => m.stop()));
    await cluster?.stop();
  });

  test('a broken recipe stalls with FILE:LINE:COL and an Event, without a retry loop; fixing it builds', async () => {
    const ns = await namespace('broken');
    const manager = await startManager(ns);
    await createStackerfile(ns, 'app', 'A:\n  from: {type: docker, url: "docker://centos:latest"}\n  run: 42\n');
    const stalled = await eventually('Stalled', async () => {
      const sf = await getStackerfile(ns, 'app');
      return condition(sf, 'Stalled')?.status === 'True' ? sf : undefined;
    });
    assert.equal(condition(stalled, 'Stalled')?.reason, 'InvalidRecipe');
    assert.match(condition(stalled, 'Stalled')?.message ?? '', /^broken\/app\.stacker\.yaml:3:\d+: A\.run: /);
    assert.equal(condition(stalled, 'Ready')?.status, 'False');
    assert.equal(condition(stalled, 'Stalled')?.observedGeneration, 1);
    const events = await eventually('an InvalidRecipe Event', async () => {
      const list = await core.listNamespacedEvent({ namespace: ns });
      return list.items.some((e) => e.reason === 'InvalidRecipe' && e.involvedObject.name === 'app') ? list : undefined;
    });
    assert.ok(events.items.length >= 1);
    const reconcilesOf = () => metric(manager, /restack_reconcile_total\{kind="Stackerfile",result="success"\} (\d+)/);
    // The controller's own status write comes back once as a watch event (one more reconcile, a
    // no-op); under load it can arrive late. Settle on that, then a loop would keep counting.
    const settled = await eventually('the reconcile count to settle', async () => {
      const before = await reconcilesOf();
      await new Promise((resolve) => setTimeout(resolve, 1000));
      return (await reconcilesOf()) === before ? before : undefined;
    });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    assert.equal(await reconcilesOf(), settled, 'no reconcile loop on an invalid recipe');
    assert.equal((await listBuilds(ns)).length, 0);
    assert.equal((await (await fetch(`http://127.0.0.1:${manager.address().port}/healthz`)).text()), 'ok');

    await objects.patchNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name: 'app', body: { spec: { recipe: seeds } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const ready = await eventually('Ready after the fix', async () => {
      const sf = await getStackerfile(ns, 'app');
      return condition(sf, 'Ready')?.status === 'True' ? sf : undefined;
    });
    const builds = await listBuilds(ns);
    assert.equal(builds.length, 1);
    assert.equal(builds[0]?.spec.reason, 'Initial', 'nothing was published before, so the first build is Initial');
    assert.equal(builds[0]?.spec.recipeGeneration, 2);
    assert.equal(builds[0]?.status?.phase, 'Succeeded');
    assert.deepEqual(ready.status?.images?.map((i) => i.name).sort(), ['A', 'python3', 'ssl']);
    assert.equal(ready.status?.images?.find((i) => i.name === 'A')?.ref, '127.0.0.1:5000/team/a:latest', 'where the builder pushed it');
    assert.equal(condition(ready, 'Stalled')?.status, 'False');
    assert.equal(await metric(manager, /restack_builds_total\{result="Succeeded"\} (\d+)/), 1);
  });

  test("the seeds' recipe gets exactly one ImageBuild, even across an operator restart", async () => {
    const ns = await namespace('seeds');
    const first = await startManager(ns);
    await createStackerfile(ns, 'seeds', seeds);
    await eventually('Ready', async () => (condition(await getStackerfile(ns, 'seeds'), 'Ready')?.status === 'True' ? true : undefined));
    await first.stop();
    const second = await startManager(ns);
    await eventually('the second manager reconciled', async () => ((await metric(second, /restack_reconcile_total\{kind="Stackerfile",result="success"\} (\d+)/)) > 0 ? true : undefined));
    const builds = await listBuilds(ns);
    assert.equal(builds.length, 1);
    assert.match(builds[0]?.metadata?.name ?? '', /^seeds-1-[0-9a-f]{6}$/);
    assert.equal(builds[0]?.metadata?.ownerReferences?.[0]?.controller, true);
  });

  test('a Stackerfile with a 253-character name builds: every name and label the operator derives fits the API\'s limits', async () => {
    const ns = await namespace('long-names');
    await startManager(ns);
    const long = (letter: string) => `${'a'.repeat(200)}.${letter.repeat(52)}`;
    // Two names that share their first 200 characters get builds of their own.
    for (const name of [long('x'), long('y')]) await createStackerfile(ns, name, seeds);
    for (const name of [long('x'), long('y')]) {
      await eventually(`${name.slice(-3)} Ready`, async () => (condition(await getStackerfile(ns, name), 'Ready')?.status === 'True' ? true : undefined));
    }
    const builds = await listBuilds(ns);
    assert.equal(builds.length, 2);
    assert.equal(new Set(builds.map((b) => b.metadata?.name)).size, 2);
    for (const build of builds) {
      assert.ok((build.metadata?.name ?? '').length <= 63 - '-recipe'.length, build.metadata?.name);
      const label = build.metadata?.labels?.['restack.dev/stackerfile'] ?? '';
      assert.ok(label.length <= 63 && label.startsWith('a'.repeat(40)), label);
    }
  });

  test('an ImageBuild is matched to its Stackerfile by owner uid: a build not owned by the Stackerfile it names is never run for it', async () => {
    const ns = await namespace('by-uid');
    await startManager(ns);
    const create = (name: string) =>
      objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec: { recipe: seeds, suspend: true, output: { registry: '127.0.0.1:5000/team' } } } }) as Promise<Stackerfile>;
    await create('app');
    // Owned by another object, as the builds of an earlier Stackerfile of the same name are.
    const other = await create('other');
    await objects.createNamespacedCustomObject({
      ...api,
      namespace: ns,
      plural: 'imagebuilds',
      body: {
        apiVersion: 'restack.dev/v1alpha1',
        kind: 'ImageBuild',
        metadata: { name: 'stale', ownerReferences: [{ apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', name: 'app', uid: other.metadata?.uid ?? '', controller: true }] },
        spec: { stackerfileRef: { name: 'app' }, strategy: 'Build', reason: 'Initial' },
      },
    });
    const stale = await eventually('the stale build finished', async () => {
      const build = (await listBuilds(ns)).find((b) => b.metadata?.name === 'stale');
      return build?.status?.phase === 'Succeeded' || build?.status?.phase === 'Failed' ? build : undefined;
    });
    assert.equal(stale.status?.phase, 'Failed');
    assert.match(stale.status?.message ?? '', /^Stackerfile by-uid\/app is not the one this build was made for/);
    assert.equal((await getStackerfile(ns, 'app')).status?.images, undefined);
  });

  test('only a change of what is built starts a build: history, schedule and suspend edits do not, substitutions do', async () => {
    const ns = await namespace('what-is-built');
    await startManager(ns);
    await createStackerfile(ns, 'app', seeds);
    const ready = async (generation: number) =>
      eventually(`Ready at generation ${generation}`, async () => {
        const sf = await getStackerfile(ns, 'app');
        return condition(sf, 'Ready')?.status === 'True' && sf.status?.observedGeneration === generation ? sf : undefined;
      });
    await ready(1);
    const patch = (spec: object) => objects.patchNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name: 'app', body: { spec } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    await patch({ history: { succeeded: 3, failed: 1 } });
    await patch({ updates: { schedule: '*/10 * * * *' } });
    await patch({ suspend: true });
    await patch({ suspend: false });
    await ready(5);
    const [first, ...none] = await listBuilds(ns);
    assert.equal(none.length, 0, 'no build for edits that change nothing built');
    assert.match(first?.spec.recipeDigest ?? '', /^sha256:[0-9a-f]{64}$/);
    await patch({ substitutions: { GREETING: 'hello' } });
    await ready(6);
    const builds = (await listBuilds(ns)).sort((a, b) => (a.spec.recipeGeneration ?? 0) - (b.spec.recipeGeneration ?? 0));
    assert.deepEqual(builds.map((b) => `${b.spec.reason}/${b.status?.phase}`), ['Initial/Succeeded', 'RecipeChange/Succeeded']);
    assert.equal(builds[1]?.spec.recipeDigest, first?.spec.recipeDigest, 'the same recipe text');
    assert.notEqual(builds[1]?.spec.buildDigest, first?.spec.buildDigest);
  });

  test('an edit of the recipeFrom ConfigMap alone builds the new recipe, and the build pins the text it built', async () => {
    const ns = await namespace('recipe-from');
    const manager = await startManager(ns);
    const edited = `${seeds}\n# edited\n`;
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'recipes' }, data: { 'stacker.yaml': seeds } } });
    await eventually('Stackerfile create', () =>
      objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name: 'app' }, spec: { recipeFrom: { configMapKeyRef: { name: 'recipes', key: 'stacker.yaml' } }, output: { registry: '127.0.0.1:5000/team' } } } }),
    );
    await eventually('Ready', async () => (condition(await getStackerfile(ns, 'app'), 'Ready')?.status === 'True' ? true : undefined));
    // Once nothing else is left to reconcile, only the ConfigMap's change can bring the next one.
    const reconciles = () => metric(manager, /restack_reconcile_total\{kind="Stackerfile",result="success"\} (\d+)/);
    await eventually('the reconciles to settle', async () => {
      const before = await reconciles();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return (await reconciles()) === before ? true : undefined;
    });
    await core.patchNamespacedConfigMap({ namespace: ns, name: 'recipes', body: { data: { 'stacker.yaml': edited } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const rebuilt = await eventually('a build of the edited recipe', async () => {
      const builds = await listBuilds(ns);
      return builds.find((b) => b.spec.reason === 'RecipeChange' && b.status?.phase === 'Succeeded');
    });
    assert.equal(rebuilt.spec.recipeDigest, `sha256:${createHash('sha256').update(edited).digest('hex')}`);
    assert.equal((await getStackerfile(ns, 'app')).metadata?.generation, 1, 'the Stackerfile itself was not touched');
  });

  test('a failure that may pass on its own is tried again with backoff until it builds', async () => {
    const ns = await namespace('transient');
    await startManager(ns, { buildRetry: { initialMs: 200, maxMs: 400, attempts: 5 } });
    await objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name: 'app' }, spec: { recipe: seeds, substitutions: { FAIL: 'UNREACHABLE:2:transient' }, output: { registry: '127.0.0.1:5000/team' } } } });
    await eventually('Ready', async () => (condition(await getStackerfile(ns, 'app'), 'Ready')?.status === 'True' ? true : undefined));
    const builds = (await listBuilds(ns)).sort((a, b) => (a.spec.attempt ?? 1) - (b.spec.attempt ?? 1));
    assert.deepEqual(builds.map((b) => `${b.spec.attempt ?? 1} ${b.status?.phase} ${b.status?.retryable ?? false}`), ['1 Failed true', '2 Failed true', '3 Succeeded false']);
    assert.ok(builds.every((b) => b.spec.reason === 'Initial'));
  });

  test('a failure that will not pass stalls, and the restack.dev/rebuild annotation builds again', async () => {
    const ns = await namespace('annotated');
    const manager = await startManager(ns, { buildRetry: { initialMs: 200, maxMs: 400, attempts: 5 } });
    await objects.createNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name: 'app' }, spec: { recipe: seeds, substitutions: { FAIL: 'RUN_FAILED:1:annotated' }, output: { registry: '127.0.0.1:5000/team' } } } });
    const stalled = await eventually('Stalled', async () => {
      const sf = await getStackerfile(ns, 'app');
      return condition(sf, 'Stalled')?.status === 'True' ? sf : undefined;
    });
    assert.equal(condition(stalled, 'Stalled')?.reason, 'BuildFailed');
    const reconciles = () => metric(manager, /restack_reconcile_total\{kind="Stackerfile",result="success"\} (\d+)/);
    await eventually('the reconciles to settle', async () => {
      const before = await reconciles();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      return (await reconciles()) === before ? true : undefined;
    });
    assert.equal((await listBuilds(ns)).length, 1, 'not retried: RUN_FAILED does not pass on its own');
    await objects.patchNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles', name: 'app', body: { metadata: { annotations: { 'restack.dev/rebuild': 'now' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    const ready = await eventually('Ready after the requested rebuild', async () => {
      const sf = await getStackerfile(ns, 'app');
      return condition(sf, 'Ready')?.status === 'True' ? sf : undefined;
    });
    assert.equal(ready.status?.lastRebuildRequest, 'now');
    assert.deepEqual((await listBuilds(ns)).map((b) => `${b.spec.reason} ${b.status?.phase}`).sort(), ['Initial Failed', 'Manual Succeeded']);
  });

  test('with leader election only one of two managers reconciles', async () => {
    const ns = await namespace('elect');
    const election = { namespace: ns, name: 'restack-operator', leaseDurationMs: 3000, renewEveryMs: 1000 };
    const a = await startManager(ns, { leaderElection: { ...election, identity: 'a' } });
    const b = await startManager(ns, { leaderElection: { ...election, identity: 'b' } });
    await eventually('a leader', async () => (a.leading || b.leading ? true : undefined));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    assert.notEqual(a.leading, b.leading, 'exactly one leads');
    const [leader, standby] = a.leading ? [a, b] : [b, a];
    await createStackerfile(ns, 'seeds', seeds);
    await eventually('Ready', async () => (condition(await getStackerfile(ns, 'seeds'), 'Ready')?.status === 'True' ? true : undefined));
    assert.ok((await metric(leader, /restack_reconcile_total\{kind="Stackerfile",result="success"\} (\d+)/)) > 0);
    assert.equal(await metric(standby, /restack_reconcile_total\{kind="Stackerfile",result="success"\} (\d+)/), 0);
    assert.equal((await fetch(`http://127.0.0.1:${standby.address().port}/readyz`)).status, 200);
    await leader.stop();
    await eventually('the standby takes over', async () => (standby.leading ? true : undefined), 15_000);
  });
});
