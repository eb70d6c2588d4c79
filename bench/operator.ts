import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { CoreV1Api, CustomObjectsApi, Watch } from '@kubernetes/client-node';
import type { ImageBuild, Stackerfile } from '../src/operator/kube.ts';
import { useCluster } from '../test/cluster/harness.ts';
import { pushFleetInputs, seedFleet } from '../test/operator/fleet.ts';
import { installCrds } from '../test/operator/install-crds.ts';
import { counterTotal, standInBuilderCommand, startOperatorProcess } from '../test/operator/operator-process.ts';
import { startRegistry } from '../test/services/registry.ts';
import { timed, type BenchRow } from './report.ts';

const count = Number(process.env['RESTACK_BENCH_STACKERFILES'] ?? 2000);
const concurrency = Number(process.env['RESTACK_BENCH_CONCURRENCY'] ?? 16);
/** A directory for the operator's CPU profile (node --cpu-prof), to see where its start-up goes. */
const cpuProfileDir = process.env['RESTACK_BENCH_CPU_PROF'];
const api = { group: 'restack.dev', version: 'v1alpha1' };
const namespace = 'bench';
const mib = 1024 * 1024;

const isReady = (sf: Stackerfile) =>
  sf.status?.observedGeneration === sf.metadata?.generation && (sf.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);

/** The operator's peak resident memory so far, from the kernel (VmHWM), in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = status.match(/^VmHWM:\s+(\d+) kB$/m)?.[1];
  if (kib === undefined) throw new Error(`/proc/${pid}/status has no VmHWM line`);
  return Number(kib) * 1024;
}

/**
 * `restack operator` (a process, as deployed) started over many Stackerfiles that are already up
 * to date: the time until all are Ready at their current generation, and its peak memory. Nothing
 * may be rebuilt. References: the time to create the Stackerfiles, and `kubectl get` of them all.
 */
export async function operatorBench(): Promise<BenchRow[]> {
  const cluster = await useCluster();
  const registry = await startRegistry({ parentDirectory: '/dev/shm' });
  try {
    const objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    await installCrds(cluster);
    await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
    const prefix = `${registry.host}/bench`;
    const fleet = await pushFleetInputs(prefix);
    const names = Array.from({ length: count }, (_, index) => `app-${String(index).padStart(4, '0')}`);
    // A yearly schedule: the bench measures start-up, not scheduled input checks.
    const setup = await timed(() => seedFleet({ objects, namespace, prefix, fleet, names, schedule: '0 0 1 1 *', concurrency }));
    const kubectl = await timed(() => execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, 'get', 'stackerfiles', '-n', namespace, '-o', 'json']));
    const listBuilds = async () => ((await objects.listNamespacedCustomObject({ ...api, namespace, plural: 'imagebuilds' })) as { items: ImageBuild[] }).items.length;
    const buildsBefore = await listBuilds();

    // Readiness is followed through a watch, so the bench does not load the API server with lists.
    const listed = (await objects.listNamespacedCustomObject({ ...api, namespace, plural: 'stackerfiles' })) as { items: Stackerfile[]; metadata?: { resourceVersion?: string } };
    const ready = new Set(listed.items.filter(isReady).map((sf) => sf.metadata?.name));
    let allReady: () => void = () => {};
    const allReadyPromise = new Promise<void>((resolve) => (allReady = resolve));
    const watch = await new Watch(cluster.kubeConfig).watch(
      `/apis/${api.group}/${api.version}/namespaces/${namespace}/stackerfiles`,
      { resourceVersion: listed.metadata?.resourceVersion, allowWatchBookmarks: false },
      (_phase, sf: Stackerfile) => {
        if (isReady(sf)) ready.add(sf.metadata?.name);
        else ready.delete(sf.metadata?.name);
        if (ready.size === count) allReady();
      },
      (error: unknown) => {
        if (ready.size < count && error !== null && error !== undefined) console.error(`bench operator: the watch of Stackerfiles ended: ${String(error)}`);
      },
    );

    const started = process.hrtime.bigint();
    const operator = await startOperatorProcess({
      kubeconfigPath: cluster.kubeconfigPath,
      args: ['--namespace', namespace, '--executor', 'local', '--builder', standInBuilderCommand, '--default-schedule', '0 0 1 1 *'],
      nodeArgs: cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir],
    });
    try {
      const readyAfter = Number(process.hrtime.bigint() - started) / 1e9;
      await allReadyPromise;
      const allReadyAfter = Number(process.hrtime.bigint() - started) / 1e9;
      watch.abort();
      const peak = await peakRss(operator.pid);
      const metrics = await operator.metrics();
      const rebuilt = (await listBuilds()) - buildsBefore + counterTotal(metrics, 'restack_builds_total');
      const reconciles = counterTotal(metrics, 'restack_reconcile_total');
      console.error(`bench operator: ${reconciles} reconciles; /readyz after ${readyAfter.toFixed(1)} s`);
      return [
        { bench: 'operator', metric: `start to ${count} up-to-date Ready`, value: allReadyAfter, unit: 's', reference: { name: 'creating them', value: setup.seconds }, target: '< 60 s', met: allReadyAfter < 60 },
        { bench: 'operator', metric: `start to ${count} up-to-date Ready`, value: allReadyAfter, unit: 's', reference: { name: 'kubectl get -o json', value: kubectl.seconds } },
        { bench: 'operator', metric: 'peak RSS (VmHWM)', value: peak / mib, unit: 'MiB', target: '< 300 MiB', met: peak / mib < 300 },
        { bench: 'operator', metric: 'ImageBuilds created or run', value: rebuilt, unit: '', target: '0', met: rebuilt === 0 },
      ];
    } finally {
      // SIGTERM: a clean exit, which is when node writes the CPU profile.
      operator.signal('SIGTERM');
      await operator.exited;
    }
  } finally {
    await registry.stop();
    await cluster.stop();
  }
}
