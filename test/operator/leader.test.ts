// Two `restack operator --leader-elect` processes against the real API server: only the leader
// reconciles; when the leader is SIGKILLed with builds under way, the standby takes over within the
// lease duration, every Stackerfile ends Ready, and nothing that was finished is built again.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CoordinationV1Api, CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import type { ImageBuild, Stackerfile } from '../../src/operator/kube.ts';
import { installCrds } from './install-crds.ts';
import { counterTotal, standInBuilderCommand, startOperatorProcess, type OperatorProcess } from './operator-process.ts';
import type { StandInRecord } from './stand-in-builder.ts';

const api = { group: 'restack.dev', version: 'v1alpha1' };
const ns = 'leader';
const leaseSeconds = 4;
const renewSeconds = 1;
/** The spec's own bound: a standby takes over within the lease duration, plus its retry period and a loaded machine's delays. */
const takeoverBoundMs = (leaseSeconds + 6) * 1000;
const names = Array.from({ length: 6 }, (_, index) => `app-${index}`);
/** app-N has N+1 layers: builds that run side by side finish one after another, so the kill finds some done and some not. */
const layersOf = (name: string) => Array.from({ length: Number(name.slice('app-'.length)) + 1 }, (_, index) => `layer${index}`);
const recipeOf = (name: string) => layersOf(name).map((layer) => `${layer}:\n  from: {type: docker, url: "docker://centos:latest"}\n  run: [echo ${layer}]\n`).join('');
const pushTarget = (name: string) => `docker://127.0.0.1:5000/${name}`;

async function metrics(operator: OperatorProcess): Promise<{ leader: number; reconciles: number }> {
  const text = await operator.metrics();
  return { leader: Number(text.match(/^restack_leader (\d+)$/m)?.[1] ?? Number.NaN), reconciles: counterTotal(text, 'restack_reconcile_total') };
}

describe('two operator processes with leader election', { timeout: 300_000 }, () => {
  let cluster: Cluster;
  let objects: CustomObjectsApi;
  let core: CoreV1Api;
  let standInLog: string;
  const operators: OperatorProcess[] = [];

  const podOf = (index: number) => `operator-${index}`;
  const startReplica = (index: number) =>
    startOperatorProcess({
      kubeconfigPath: cluster.kubeconfigPath,
      args: ['--namespace', ns, '--executor', 'local', '--builder', standInBuilderCommand, '--builder-env', 'RESTACK_STAND_IN_LOG', '--builder-env', 'RESTACK_STAND_IN_LAYER_MS', '--no-updates',
        '--leader-elect', '--lease-duration', String(leaseSeconds), '--lease-renew-period', String(renewSeconds), '--leader-pod-name', podOf(index)],
      env: { RESTACK_STAND_IN_LOG: standInLog, RESTACK_STAND_IN_LAYER_MS: '400' },
    });
  /** The pods labelled as the leader's. */
  const labelledLeaders = async () => (await core.listNamespacedPod({ namespace: ns, labelSelector: 'restack.dev/leader=true' })).items.map((pod) => pod.metadata?.name).sort();
  const builds = async () => ((await objects.listNamespacedCustomObject({ ...api, namespace: ns, plural: 'imagebuilds' })) as { items: ImageBuild[] }).items;
  const stackerfiles = async () => ((await objects.listNamespacedCustomObject({ ...api, namespace: ns, plural: 'stackerfiles' })) as { items: Stackerfile[] }).items;

  before(async () => {
    cluster = await useCluster();
    objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    core = cluster.kubeConfig.makeApiClient(CoreV1Api);
    await installCrds(cluster);
    await core.createNamespace({ body: { metadata: { name: ns } } });
    standInLog = join(await mkdtemp(join(tmpdir(), 'restack-leader-test-')), 'builds.jsonl');
    await writeFile(standInLog, '');
    for (let index = 0; index < 2; index++) {
      // The replica's pod, as a Deployment would make it (the processes run here): the leader labels it.
      await core.createNamespacedPod({ namespace: ns, body: { metadata: { name: podOf(index) }, spec: { containers: [{ name: 'operator', image: 'restack' }] } } });
      operators.push(await startReplica(index));
    }
  });
  after(async () => {
    for (const operator of operators) operator.signal('SIGTERM');
    await Promise.all(operators.map((operator) => operator.exited));
    await cluster?.stop();
  });

  test('only the leader reconciles; killing it mid-build hands over within the lease duration and nothing finished is built twice', async () => {
    const leaderOf = async () => {
      const leading = [];
      for (const operator of operators) if ((await metrics(operator)).leader === 1) leading.push(operator);
      return leading.length === 1 ? leading[0] : undefined;
    };
    const leader = await eventually('exactly one leader', leaderOf);
    const standby = operators.find((operator) => operator !== leader) as OperatorProcess;
    const leaderPod = podOf(operators.indexOf(leader));
    const standbyPod = podOf(operators.indexOf(standby));
    await eventually("the leader's pod labelled, and only it", async () => ((await labelledLeaders()).join() === leaderPod ? true : undefined));

    for (const name of names) {
      await objects.createNamespacedCustomObject({
        ...api,
        namespace: ns,
        plural: 'stackerfiles',
        body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec: { recipe: recipeOf(name), output: { registry: `127.0.0.1:5000/${name}` } } },
      });
    }
    // Kill while some builds are finished and others are running or waiting.
    const finishedBeforeKill = await eventually(
      'some builds finished and some not',
      async () => {
        const items = await builds();
        const succeeded = items.filter((build) => build.status?.phase === 'Succeeded');
        return succeeded.length > 0 && succeeded.length < names.length ? succeeded : undefined;
      },
      60_000,
    ).catch(async (error: unknown) => {
      const conditions = (await stackerfiles()).map((sf) => sf.status?.conditions?.find((c) => c.status === 'True'));
      throw new Error(`${String(error)}; ImageBuild phases ${JSON.stringify((await builds()).map((build) => build.status?.phase))}; Stackerfile conditions ${JSON.stringify(conditions)}; the leader's log:\n${leader.output()}`);
    });
    assert.equal(await leaderOf(), leader, 'the leader did not change while it was healthy');
    assert.deepEqual(await metrics(standby), { leader: 0, reconciles: 0 }, 'the standby reconciles nothing');
    assert.ok((await metrics(leader)).reconciles > 0);

    const killedAt = Date.now();
    leader.signal('SIGKILL');
    await leader.exited;
    await eventually('the standby leads', async () => ((await metrics(standby)).leader === 1 ? true : undefined), takeoverBoundMs + 10_000);
    const takeoverMs = Date.now() - killedAt;
    console.log(`leader ${leader.pid} killed; standby ${standby.pid} took over after ${takeoverMs} ms (lease duration ${leaseSeconds} s, renewed every ${renewSeconds} s)`);
    assert.ok(takeoverMs <= takeoverBoundMs, `took over after ${takeoverMs} ms, more than the lease duration ${leaseSeconds} s + slack`);
    const lease = await cluster.kubeConfig.makeApiClient(CoordinationV1Api).readNamespacedLease({ namespace: ns, name: 'restack-operator' });
    assert.match(lease.spec?.holderIdentity ?? '', new RegExp(`_${standby.pid}_`), 'the Lease names the new leader');

    await eventually(
      `all ${names.length} Stackerfiles Ready`,
      async () => {
        const items = await stackerfiles();
        const ready = items.filter((sf) => sf.status?.observedGeneration === sf.metadata?.generation && sf.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True'));
        return ready.length === names.length ? true : undefined;
      },
      120_000,
    ).catch((error: unknown) => {
      throw new Error(`${String(error)}; the new leader's log:\n${standby.output()}`);
    });

    const finalBuilds = await builds();
    const buildOf = (name: string) => finalBuilds.filter((build) => build.spec.stackerfileRef.name === name);
    for (const name of names) {
      assert.equal(buildOf(name).length, 1, `one ImageBuild for ${name}, not a second one after the handover`);
      assert.match(buildOf(name)[0]?.metadata?.name ?? '', new RegExp(`^${name}-1-[0-9a-f]{6}$`));
      assert.equal(buildOf(name)[0]?.status?.phase, 'Succeeded');
    }

    const records = (await readFile(standInLog, 'utf8')).trim().split('\n').map((line) => JSON.parse(line) as StandInRecord);
    const restarted = new Set(
      (await core.listNamespacedEvent({ namespace: ns })).items.filter((event) => event.reason === 'Restarted').map((event) => event.involvedObject.name),
    );
    const finished = new Set(finishedBeforeKill.map((build) => build.spec.stackerfileRef.name));
    const count = { finishedBeforeKill: 0, rerun: 0, byNewLeader: 0, aroundKill: 0 };
    for (const name of names) {
      const mine = records.filter((record) => record.push === pushTarget(name));
      const runs = mine.filter((record) => record.event === 'start').map((record) => record.operator);
      const layersBy = (operator: number | undefined) => mine.filter((record) => record.event === 'layer' && record.operator === operator).map((record) => record.layer);
      assert.equal(new Set(runs).size, runs.length, `${name}: no operator ran its build twice (runs by ${runs.join(', ')})`);
      assert.deepEqual(layersBy(runs.at(-1)), layersOf(name), `${name}: its last run built each layer once`);
      if (finished.has(name)) {
        assert.deepEqual(runs, [leader.pid], `${name} was Succeeded before the kill: built once, by the old leader`);
        count.finishedBeforeKill++;
      } else if (runs.length === 2) {
        // The documented exception: a build the kill interrupted runs again, and says so.
        assert.deepEqual(runs, [leader.pid, standby.pid], `${name}: interrupted by the kill, then run by the new leader`);
        assert.ok(restarted.has(buildOf(name)[0]?.metadata?.name ?? ''), `${name}: the rerun of an interrupted build has a Restarted Event`);
        count.rerun++;
      } else if (runs[0] === standby.pid) {
        count.byNewLeader++;
      } else {
        count.aroundKill++;
      }
    }
    assert.ok(count.rerun + count.byNewLeader > 0, 'the new leader finished what the old one left');
    console.log(`builds: ${JSON.stringify(count)}`);

    // The killed leader could not remove its label: the new leader takes it off, once its own pod is labelled.
    await eventually("only the new leader's pod labelled", async () => ((await labelledLeaders()).join() === standbyPod ? true : undefined));
    // A process that starts in a pod still labelled (as if the new leader had not got to it yet)
    // removes that label itself, and stands by.
    await core.patchNamespacedPod({ namespace: ns, name: leaderPod, body: { metadata: { labels: { 'restack.dev/leader': 'true' } } } }, setHeaderOptions('Content-Type', PatchStrategy.MergePatch));
    assert.deepEqual(await labelledLeaders(), [leaderPod, standbyPod].sort());
    const replacement = await startReplica(operators.indexOf(leader));
    operators.push(replacement);
    await eventually('the stale label removed', async () => ((await labelledLeaders()).join() === standbyPod ? true : undefined));
    assert.equal((await metrics(replacement)).leader, 0, 'the restarted replica stands by');
  });
});
