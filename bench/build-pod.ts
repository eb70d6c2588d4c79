import { join } from 'node:path';
import { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import { pino } from 'pino';
import { referenceOpener } from '../src/cli/commands/store-options.ts';
import { LocalExecutor } from '../src/operator/executor-local.ts';
import { PodExecutor } from '../src/operator/executor-pod.ts';
import type { Executor } from '../src/operator/executor.ts';
import type { ImageBuild } from '../src/operator/kube.ts';
import { Manager } from '../src/operator/manager.ts';
import { pushBusyboxBase } from '../test/build-engine/helpers.ts';
import { eventually, useCluster, type Cluster, type RealNode } from '../test/cluster/harness.ts';
import { startRegistryPod } from '../test/cluster/registry-pod.ts';
import { allowBuilderImages, impersonating, operatorUser, podBuildPolicy, setUpPodBuilds } from '../test/operator/build-namespace.ts';
import { installCrds } from '../test/operator/install-crds.ts';
import { depsRecipe } from '../test/operator/seeds-recipes.ts';
import { SkipError } from '../test/services/service.ts';
import { type BenchRow } from './report.ts';

const root = join(import.meta.dirname, '..');
const runs = Number(process.env['RESTACK_BENCH_BUILD_POD_RUNS'] ?? 3);
const api = { group: 'restack.dev', version: 'v1alpha1' };

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? Number.NaN;

/**
 * One build of the seeds' ssl and python3 (a busybox base, two run steps in LXC, pushed to a
 * registry pod), from the Stackerfile's creation to its ImageBuild Succeeded, through the operator
 * with each executor in turn on the same machine: in a build pod on the real node (scheduling,
 * sandbox, container start, the builder's own start-up, the result through the termination
 * message) against the local executor (`restack build` as a child process). Each run builds a new
 * python3 version, so nothing comes from a cache; the median of RESTACK_BENCH_BUILD_POD_RUNS runs.
 */
export async function buildPodBench(): Promise<BenchRow[]> {
  let cluster: Cluster;
  try {
    cluster = await useCluster({ realNode: true });
  } catch (error) {
    if (!(error instanceof SkipError)) throw error;
    console.error(`bench build-pod: skipped: ${error.message}`);
    return [];
  }
  const node = cluster.node as RealNode;
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  const objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
  const registry = await startRegistryPod({ ...cluster, node }, 'bench-registry');
  try {
    await installCrds(cluster);
    await setUpPodBuilds(cluster, []);
    await allowBuilderImages(cluster, [node.builderImage]);
    const base = `docker://${registry.host}/bench/base:latest`;
    await pushBusyboxBase(base, {}, referenceOpener({ insecure: true }));

    /** Seconds from each Stackerfile's creation to its ImageBuild Succeeded, one build at a time. */
    const buildTimes = async (namespace: string, labels: Record<string, string>, executor: Executor): Promise<number[]> => {
      await core.createNamespace({ body: { metadata: { name: namespace, labels } } });
      // The operator's own identity: the admission policy admits build pods from it only.
      const manager = new Manager({ kubeConfig: impersonating(cluster, operatorUser), logger: pino({ level: 'silent' }), executor, namespace, metricsBindAddress: '127.0.0.1:0' });
      await manager.start();
      const seconds: number[] = [];
      try {
        for (let run = 0; run < runs; run++) {
          const name = `deps-${run}`;
          const recipe = depsRecipe(base, `3.12.${run}-${namespace}`);
          const started = process.hrtime.bigint();
          await eventually('the Stackerfile created', () =>
            objects.createNamespacedCustomObject({ ...api, namespace, plural: 'stackerfiles', body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec: { recipe, output: { registry: `${registry.host}/${namespace}`, insecure: true } } } }),
          );
          const build = await eventually(
            `${namespace}/${name} built`,
            async () => {
              const list = (await objects.listNamespacedCustomObject({ ...api, namespace, plural: 'imagebuilds', labelSelector: `restack.dev/stackerfile=${name}` })) as { items: ImageBuild[] };
              return list.items.find((b) => b.status?.phase === 'Succeeded' || b.status?.phase === 'Failed');
            },
            300_000,
          );
          if (build.status?.phase !== 'Succeeded') throw new Error(`bench build-pod: ${namespace}/${name} failed: ${build.status?.message}`);
          seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
        }
      } finally {
        await manager.stop();
      }
      return seconds;
    };

    const local = await buildTimes('bench-local', {}, new LocalExecutor([process.execPath, join(root, 'src', 'cli', 'main.ts'), 'build']));
    const pod = await buildTimes('bench-pod', { 'pod-security.kubernetes.io/enforce': 'privileged', 'restack.dev/builds': 'true' }, new PodExecutor({ policy: podBuildPolicy(node.builderImage) }));
    console.error(`bench build-pod: local ${local.map((s) => s.toFixed(2)).join(', ')} s; pod ${pod.map((s) => s.toFixed(2)).join(', ')} s`);
    return [
      { bench: 'build-pod', metric: 'Stackerfile to Succeeded (ssl, python3)', value: median(pod), unit: 's', reference: { name: 'local executor', value: median(local) } },
      { bench: 'build-pod', metric: 'build pod overhead over local', value: median(pod) - median(local), unit: 's' },
    ];
  } finally {
    await registry.stop();
    await cluster.stop();
  }
}
