import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { parse } from 'yaml';
import { CoreV1Api, CustomObjectsApi, Watch } from '@kubernetes/client-node';
import { readStoredImage } from '../src/engine/images.ts';
import { reuseConnections } from '../src/operator/kube-connections.ts';
import type { ImageBuild, Stackerfile } from '../src/operator/kube.ts';
import { InputIndex } from '../src/watch/input-index.ts';
import { Poller } from '../src/watch/poller.ts';
import { apiServerMetrics, countsSince, cpuSecondsIn, total, writesIn } from '../test/cluster/api-requests.ts';
import { useCluster, type Cluster } from '../test/cluster/harness.ts';
import { bumpPython3, pushFleetInputs, python3Flavour, seedFleet } from '../test/operator/fleet.ts';
import { installCrds } from '../test/operator/install-crds.ts';
import { counterTotal, standInBuilderCommand, startOperatorProcess, type OperatorProcess } from '../test/operator/operator-process.ts';
import { startFaultyProxy, type FaultyProxy, type ProxiedRequest } from '../test/services/faulty-proxy.ts';
import { startRegistry } from '../test/services/registry.ts';
import { open } from '../test/swap/seeds.ts';
import { timed, type BenchRow } from './report.ts';
import { swapFanOut } from './swap.ts';

const count = Number(process.env['RESTACK_BENCH_STACKERFILES'] ?? 10_000);
const concurrency = Number(process.env['RESTACK_BENCH_CONCURRENCY'] ?? 16);
/** Images composed and Stackerfiles written at once while seeding: the API server's latency, not its CPU, bounds seeding (22 min for 10,000 at 16). */
const seedConcurrency = Number(process.env['RESTACK_BENCH_SEED_CONCURRENCY'] ?? 64);
/** More flags for the operator started over the Stackerfiles, split on spaces (e.g. "--reconcile-workers 16"), to measure a setting. */
const operatorFlags = (process.env['RESTACK_BENCH_OPERATOR_FLAGS'] ?? '').split(' ').filter((flag) => flag !== '');
/** A directory for the operator's CPU profile (node --cpu-prof), to see where its start-up goes. */
const cpuProfileDir = process.env['RESTACK_BENCH_CPU_PROF'];
const api = { group: 'restack.dev', version: 'v1alpha1' };
const namespace = 'bench';
const mib = 1024 * 1024;
/** /readyz of an operator over 10,000 Stackerfiles on a loaded 2-core machine: the time is measured, never bounded by a test's 120 s. */
const readyTimeoutMs = 600_000;

/** Seeding progress on stderr every 1,000 Stackerfiles, so a long setup shows it is moving. */
const seedProgress = (what: string, total: number) => (done: number) => {
  if (done % 1000 === 0 || done === total) console.error(`bench ${what}: seeded ${done} of ${total} Stackerfiles`);
};

const isReady = (sf: Stackerfile) =>
  sf.status?.observedGeneration === sf.metadata?.generation && (sf.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false);

/** The operator's peak resident memory so far, from the kernel (VmHWM), in bytes. */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const kib = status.match(/^VmHWM:\s+(\d+) kB$/m)?.[1];
  if (kib === undefined) throw new Error(`/proc/${pid}/status has no VmHWM line`);
  return Number(kib) * 1024;
}

/** CPU seconds (user and system) a process has used so far, from /proc (clock ticks of 1/100 s). */
async function cpuSeconds(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).replace(/^.*\) /s, '').split(' ');
  // After "pid (comm) ": state is field 3, utime 14 and stime 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * Follows a namespace's Stackerfiles through a watch, so the bench does not load the API server
 * with lists: `reached` resolves once `count` of them satisfy `done`. A watch that ends before
 * (the client's idle timeout, while a loaded machine still starts the operator) is listed and
 * watched again. `modified()` counts the writes to them the watches saw (the operator's status
 * writes; those made while a watch was being started again are missed).
 */
async function followStackerfiles(cluster: Cluster, objects: CustomObjectsApi, namespace: string, count: number, done: (sf: Stackerfile) => boolean) {
  const reachedBy = new Set<string | undefined>();
  let modified = 0;
  let resolve: () => void = () => {};
  const reached = new Promise<void>((settle) => (resolve = settle));
  let finished = false;
  let request: AbortController | undefined;
  const follow = async (): Promise<void> => {
    const listed = (await objects.listNamespacedCustomObject({ ...api, namespace, plural: 'stackerfiles' })) as { items: Stackerfile[]; metadata?: { resourceVersion?: string } };
    reachedBy.clear();
    for (const sf of listed.items.filter(done)) reachedBy.add(sf.metadata?.name);
    if (reachedBy.size === count) {
      finished = true;
      resolve();
      return;
    }
    request = await new Watch(cluster.kubeConfig).watch(
      `/apis/${api.group}/${api.version}/namespaces/${namespace}/stackerfiles`,
      { resourceVersion: listed.metadata?.resourceVersion, allowWatchBookmarks: false },
      (phase, sf: Stackerfile) => {
        if (phase === 'MODIFIED') modified++;
        if (done(sf)) reachedBy.add(sf.metadata?.name);
        else reachedBy.delete(sf.metadata?.name);
        if (reachedBy.size === count) {
          finished = true;
          resolve();
        }
      },
      (error: unknown) => {
        if (finished) return;
        console.error(`bench operator: the watch of Stackerfiles in ${namespace} ended (${String(error)}); following them again`);
        follow().catch((failure: unknown) => console.error(`bench operator: cannot follow the Stackerfiles in ${namespace}: ${String(failure)}`));
      },
    );
  };
  await follow();
  return {
    reached,
    modified: () => modified,
    abort: () => {
      finished = true;
      request?.abort();
    },
  };
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
    const objects = pooledObjects(cluster);
    await installCrds(cluster);
    await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
    const prefix = `${registry.host}/bench`;
    const fleet = await pushFleetInputs(prefix);
    const names = Array.from({ length: count }, (_, index) => `app-${String(index).padStart(4, '0')}`);
    // A yearly schedule: the bench measures start-up, not scheduled input checks.
    const setup = await timed(() => seedFleet({ objects, namespace, prefix, fleet, names, schedule: '0 0 1 1 *', concurrency: seedConcurrency, onProgress: seedProgress('operator', count) }));
    const kubectl = await timed(() => execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, 'get', 'stackerfiles', '-n', namespace, '-o', 'json']));
    const listBuilds = async () => ((await objects.listNamespacedCustomObject({ ...api, namespace, plural: 'imagebuilds' })) as { items: ImageBuild[] }).items.length;
    const buildsBefore = await listBuilds();

    const readiness = await followStackerfiles(cluster, objects, namespace, count, isReady);

    const cli = await shippedCli();
    const started = process.hrtime.bigint();
    const operator = await startOperatorProcess({
      kubeconfigPath: cluster.kubeconfigPath,
      cli,
      args: ['--namespace', namespace, '--executor', 'local', '--builder', standInBuilderCommand, '--default-schedule', '0 0 1 1 *', ...operatorFlags],
      nodeArgs: await operatorNodeArgs(),
      readyTimeoutMs,
    });
    try {
      const readyAfter = Number(process.hrtime.bigint() - started) / 1e9;
      await readiness.reached;
      const allReadyAfter = Number(process.hrtime.bigint() - started) / 1e9;
      // Steadier than the wall time on a shared machine: what the operator itself spent.
      const cpu = await cpuSeconds(operator.pid);
      readiness.abort();
      const peak = await peakRss(operator.pid);
      const metrics = await operator.metrics();
      const rebuilt = (await listBuilds()) - buildsBefore + counterTotal(metrics, 'restack_builds_total');
      const reconciles = counterTotal(metrics, 'restack_reconcile_total');
      const byKind = [...metrics.matchAll(/^restack_reconcile_total\{([^}]*)\} (\d+)$/gm)].map((match) => `${match[1]}: ${match[2]}`);
      console.error(`bench operator: ${reconciles} reconciles (${byKind.join('; ')}), ${readiness.modified()} Stackerfile writes seen; /readyz after ${readyAfter.toFixed(1)} s`);
      return [
        { bench: 'operator', metric: `start to ${count} up-to-date Ready`, value: allReadyAfter, unit: 's', reference: { name: 'creating them', value: setup.seconds }, target: '< 120 s', met: allReadyAfter < 120 },
        { bench: 'operator', metric: `start to ${count} up-to-date Ready`, value: allReadyAfter, unit: 's', reference: { name: 'kubectl get -o json', value: kubectl.seconds } },
        { bench: 'operator', metric: `operator CPU to ${count} Ready`, value: cpu, unit: 's' },
        { bench: 'operator', metric: 'peak RSS (VmHWM)', value: peak / mib, unit: 'MiB', target: '< 400 MiB', met: peak / mib < 400 },
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

const fanOutCount = Number(process.env['RESTACK_BENCH_FANOUT'] ?? 1000);
/** python3 bumps fanned out after the timed one, to show the operator's caches and memory stay bounded over a long run. */
const fanOutRounds = Number(process.env['RESTACK_BENCH_FANOUT_ROUNDS'] ?? 3);
/** The operator's --layer-cache-entries (its default when unset). */
const layerCacheEntries = process.env['RESTACK_BENCH_LAYER_CACHE_ENTRIES'];
const pollCount = Number(process.env['RESTACK_BENCH_POLL_STACKERFILES'] ?? 10_000);
/** Distinct inputs of the polled fleet: base, ssl and (this - 2) flavours of python3. */
const pollInputs = Math.max(3, Number(process.env['RESTACK_BENCH_POLL_INPUTS'] ?? 100));
const pollCycles = Number(process.env['RESTACK_BENCH_POLL_CYCLES'] ?? 5);
/** Every 2 seconds: a poll happens soon after a push, and cycles are short to count. */
const everyTwoSeconds = '*/2 * * * * *';
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The repository a proxied registry request is about (`/v2/<repository>/manifests|blobs|tags/…`), or '' for the /v2/ ping. */
function repositoryOf(path: string): string {
  return path.match(/^\/v2\/(.+?)\/(?:manifests|blobs|tags)\//)?.[1] ?? '';
}

function countBy<T>(items: readonly T[], key: (item: T) => string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of items) counts[key(item)] = (counts[key(item)] ?? 0) + 1;
  return counts;
}

/** The watcher's input checks (a HEAD of a tag's manifest) and /v2/ pings: the part that does not grow with the images. */
const isFixed = (request: ProxiedRequest) => request.path === '/v2/' || (request.method === 'HEAD' && /\/manifests\/[^/:@]+$/.test(request.path));

/** A fan-out's requests: per image (everything but the fixed part, over the images), the fixed part, and a breakdown for the log. */
function perImage(requests: readonly ProxiedRequest[], imagePrefix: string, images: number) {
  const fixed = requests.filter(isFixed).length;
  const kind = (request: ProxiedRequest) => {
    const repository = repositoryOf(request.path);
    const what = request.path.match(/\/(manifests|blobs\/uploads|blobs)\//)?.[1] ?? request.path;
    return repository === '' ? `${request.method} ${request.path}` : `${request.method} ${repository.startsWith(imagePrefix) ? 'image' : repository} ${what}`;
  };
  return { perImage: (requests.length - fixed) / images, fixed, breakdown: JSON.stringify(countBy(requests, kind)) };
}

interface UpdatesSetup {
  cluster: Cluster;
  objects: CustomObjectsApi;
  /** The registry's own address, for reads that must not be counted. */
  registryHost: string;
  proxy: FaultyProxy;
}

const root = join(import.meta.dirname, '..');

/** The bench's API client: one pool of keep-alive connections, as the operator's (client-node alone opens one per request). */
function pooledObjects(cluster: Cluster): CustomObjectsApi {
  return reuseConnections(cluster.kubeConfig).makeApiClient(CustomObjectsApi);
}

/**
 * node's options for the operator: its heap limit as the chart deploys it (values.yaml's
 * heapLimitMiB; RESTACK_BENCH_OPERATOR_HEAP_MIB overrides, 0 for none), and the CPU profile when asked.
 */
async function operatorNodeArgs(): Promise<string[]> {
  const values = parse(await readFile(join(root, 'charts', 'restack', 'values.yaml'), 'utf8')) as { heapLimitMiB?: number };
  const heapMiB = Number(process.env['RESTACK_BENCH_OPERATOR_HEAP_MIB'] ?? values.heapLimitMiB ?? 0);
  return [...(heapMiB > 0 ? [`--max-old-space-size=${heapMiB}`] : []), ...(cpuProfileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', cpuProfileDir])];
}

let shipped: Promise<string> | undefined;

/** The operator as the image ships it: src/ compiled by tsconfig.build.json (`npm run build`) into dist/, once a run. */
function shippedCli(): Promise<string> {
  shipped ??= execa(process.execPath, [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join(root, 'tsconfig.build.json')]).then(() => join(root, 'dist', 'cli', 'main.js'));
  return shipped;
}

async function startOperatorOn(cluster: Cluster, namespace: string, flags: readonly string[] = []): Promise<OperatorProcess> {
  return startOperatorProcess({
    kubeconfigPath: cluster.kubeconfigPath,
    cli: await shippedCli(),
    args: ['--namespace', namespace, '--executor', 'local', '--builder', standInBuilderCommand, '--schedule-jitter', '0', '--min-schedule-interval', '1', ...(layerCacheEntries === undefined ? [] : ['--layer-cache-entries', layerCacheEntries]), ...flags],
    nodeArgs: await operatorNodeArgs(),
    readyTimeoutMs,
  });
}

async function stopOperator(operator: OperatorProcess): Promise<void> {
  // SIGTERM: a clean exit, which is when node writes the CPU profile.
  operator.signal('SIGTERM');
  await operator.exited;
}

/** The operator's cache entries (restack_cache_entries) and resident memory, from its metrics, for the log. */
async function cachesAndMemory(operator: OperatorProcess): Promise<string> {
  const text = await operator.metrics();
  const caches = [...text.matchAll(/^restack_cache_entries\{cache="([^"]+)"\} (\d+)$/gm)].map((match) => `${match[1]} ${match[2]}`);
  const rss = Number(text.match(/^process_resident_memory_bytes (\d+)$/m)?.[1] ?? 0);
  return `caches: ${caches.join(', ')}; RSS ${(rss / mib).toFixed(0)} MiB, peak ${((await peakRss(operator.pid)) / mib).toFixed(0)} MiB`;
}

const python3DigestOf = (sf: Stackerfile, ref: string) => sf.status?.images?.[0]?.inputs?.find((input) => input.ref === ref)?.digest;

/** What the fan-out costs outside the registry: the operator's CPU, the API server's, and the API writes it made. */
async function apiAndCpu(cluster: Cluster, operator: OperatorProcess) {
  const metrics = await apiServerMetrics(cluster);
  return {
    operatorCpu: counterTotal(await operator.metrics(), 'process_cpu_seconds_total'),
    apiServerCpu: cpuSecondsIn(metrics),
    restack: writesIn(metrics, 'restack.dev'),
    core: writesIn(metrics, ''),
  };
}

/** The Events written since `since`, by namespace, type and reason, for the log: a fan-out should add Warnings only. */
async function eventReasons(cluster: Cluster, since: Date): Promise<string> {
  const { items } = await cluster.kubeConfig.makeApiClient(CoreV1Api).listEventForAllNamespaces();
  const counts = new Map<string, number>();
  for (const event of items) {
    const at = event.lastTimestamp ?? event.eventTime ?? event.metadata.creationTimestamp;
    if (at === undefined || new Date(at) < since) continue;
    const key = `${event.metadata.namespace}/${event.type}/${event.reason}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return [...counts].map(([key, count]) => `${key} ${count}`).join(', ');
}

/**
 * 1. python3+1 fanned out by the operator process to images that are up to date and apply
 * python3: the time from the push until every Stackerfile's status shows python3+1 (its tag was
 * moved before), and the registry requests per image. Reference: the same swaps by the engine
 * alone (bench/swap.ts's fan-out) on the same images, for python3+2.
 */
async function fanOutBench({ cluster, objects, registryHost, proxy }: UpdatesSetup): Promise<BenchRow[]> {
  const namespace = 'bench-fanout';
  await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  // Through the counting proxy: the operator sees the registry at the proxy's address.
  const prefix = `${proxy.host}/fanout`;
  const fleet = await pushFleetInputs(prefix);
  const names = Array.from({ length: fanOutCount }, (_, index) => `app-${String(index).padStart(4, '0')}`);
  const setup = await timed(() => seedFleet({ objects, namespace, prefix, fleet, names, schedule: everyTwoSeconds, concurrency: seedConcurrency }));
  // Settled, inputs checked: the operator writes nothing more before the bump, so every API write counted is the fan-out's.
  const settled = await followStackerfiles(cluster, objects, namespace, fanOutCount, (sf) => isReady(sf) && sf.status?.conditions?.some((c) => c.type === 'InputsAvailable' && c.status === 'True') === true);
  const operator = await startOperatorOn(cluster, namespace);
  let swapped: { seconds: number; requests: ProxiedRequest[]; operatorCpu: number; apiServerCpu: number; writes: Record<string, number>; events: number };
  try {
    await settled.reached;
    settled.abort();
    const python3Next = await bumpPython3(prefix, fleet, '3.12.0');
    const mark = proxy.requests.length;
    const before = await apiAndCpu(cluster, operator);
    const started = process.hrtime.bigint();
    // Event timestamps are whole seconds.
    const startedAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const current = await followStackerfiles(cluster, objects, namespace, fanOutCount, (sf) => isReady(sf) && python3DigestOf(sf, fleet.refs.python3) === python3Next);
    await current.reached;
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    const requests = proxy.requests.slice(mark);
    current.abort();
    const after = await apiAndCpu(cluster, operator);
    // Events are the only core-group writes of the operator in a fan-out (no pods: swaps run in it).
    const events = countsSince(before.core, after.core)['POST events'] ?? 0;
    const writes = countsSince(before.restack, after.restack);
    swapped = { seconds, requests, operatorCpu: after.operatorCpu - before.operatorCpu, apiServerCpu: after.apiServerCpu - before.apiServerCpu, writes, events };
    console.error(`bench operator-updates: API writes of the fan-out: ${JSON.stringify(writes)}, Events ${events}${events === 0 ? '' : ` (${await eventReasons(cluster, startedAt)})`}`);
    console.error(`bench operator-updates: ${counterTotal(await operator.metrics(), 'restack_reconcile_total')} reconciles`);
    console.error(`bench operator-updates: after fan-out 1: ${await cachesAndMemory(operator)}`);
    for (let round = 2; round <= fanOutRounds; round++) {
      const next = await bumpPython3(prefix, fleet, `3.12.${round}`);
      const followed = await followStackerfiles(cluster, objects, namespace, fanOutCount, (sf) => isReady(sf) && python3DigestOf(sf, fleet.refs.python3) === next);
      await followed.reached;
      followed.abort();
      console.error(`bench operator-updates: after fan-out ${round}: ${await cachesAndMemory(operator)}`);
    }
  } finally {
    await stopOperator(operator);
  }

  // Every tag points at python3+1's layer, read from the registry itself (not counted).
  const newLayer = (await readStoredImage(open(fleet.refs.python3))).platforms[0]?.image.manifest.layers.at(-1)?.digest;
  let atNew = 0;
  for (const name of names) {
    const image = await readStoredImage(open(`docker://${registryHost}/fanout/${name}:latest`));
    if (image.platforms[0]?.image.manifest.layers[2]?.digest === newLayer) atNew++;
  }

  await bumpPython3(prefix, fleet, '3.13.0');
  const mark = proxy.requests.length;
  const engineCpuBefore = process.cpuUsage();
  const engine = await timed(() => swapFanOut(`docker://${prefix}`, names, fleet.refs.python3, concurrency));
  const engineCpu = process.cpuUsage(engineCpuBefore);
  const engineRequests = perImage(proxy.requests.slice(mark), 'fanout/app-', fanOutCount);
  const operatorRequests = perImage(swapped.requests, 'fanout/app-', fanOutCount);
  console.error(`bench operator-updates: fan-out requests by kind, operator: ${operatorRequests.breakdown}; engine alone: ${engineRequests.breakdown}`);
  return [
    { bench: 'op fan-out', metric: `setup: seed ${fanOutCount} Stackerfiles`, value: setup.seconds, unit: 's' },
    { bench: 'op fan-out', metric: `python3+1 to ${fanOutCount} images`, value: swapped.seconds, unit: 's', reference: { name: 'engine swaps alone', value: engine.seconds }, target: '< 30 s', met: swapped.seconds < 30 },
    { bench: 'op fan-out', metric: 'operator / engine alone', value: swapped.seconds / engine.seconds, unit: 'x', target: '<= 1.5x', met: swapped.seconds / engine.seconds <= 1.5 },
    { bench: 'op fan-out', metric: 'operator CPU', value: swapped.operatorCpu, unit: 's', reference: { name: 'engine alone (bench process)', value: (engineCpu.user + engineCpu.system) / 1e6 } },
    { bench: 'op fan-out', metric: 'API server CPU during it', value: swapped.apiServerCpu, unit: 's' },
    { bench: 'op fan-out', metric: 'API writes per swap', value: total(swapped.writes) / fanOutCount, unit: 'writes', target: '3', met: total(swapped.writes) === 3 * fanOutCount },
    { bench: 'op fan-out', metric: 'Events during it', value: swapped.events, unit: 'events' },
    { bench: 'op fan-out', metric: `requests/image (+${operatorRequests.fixed} fixed)`, value: operatorRequests.perImage, unit: 'req', reference: { name: `engine alone (+${engineRequests.fixed} fixed)`, value: engineRequests.perImage } },
    { bench: 'op fan-out', metric: 'tags at python3+1 after it', value: atNew, unit: 'images', target: `${fanOutCount}`, met: atNew === fanOutCount },
  ];
}

/**
 * 2. The input checks of Stackerfiles on a few distinct inputs, once settled: registry requests
 * per poll cycle through the operator process. Reference: the poller alone over the same inputs.
 */
async function pollCostBench({ cluster, objects, proxy }: UpdatesSetup): Promise<BenchRow[]> {
  const namespace = 'bench-poll';
  await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
  const prefix = `${proxy.host}/poll`;
  const fleet = await pushFleetInputs(prefix);
  const flavours = await Promise.all(Array.from({ length: pollInputs - 2 }, (_, index) => python3Flavour(prefix, fleet, `python3-${index}`)));
  const names = Array.from({ length: pollCount }, (_, index) => `app-${String(index).padStart(4, '0')}`);
  const index = new InputIndex();
  let seeded = 0;
  for (const [flavour, fleetOf] of flavours.entries()) {
    const owned = names.filter((_, position) => position % flavours.length === flavour);
    await seedFleet({ objects, namespace, prefix, fleet: fleetOf, names: owned, schedule: everyTwoSeconds, concurrency: seedConcurrency });
    seeded += owned.length;
    if (flavour % 10 === 9 || flavour === flavours.length - 1) console.error(`bench operator-poll: seeded ${seeded} of ${pollCount} Stackerfiles`);
    const inputs = [fleetOf.refs.base, fleetOf.refs.ssl, fleetOf.refs.python3].map((ref, position) => ({ ref, role: position === 0 ? ('from' as const) : ('apply' as const) }));
    for (const name of owned) index.set(`${namespace}/${name}`, inputs, everyTwoSeconds);
  }

  const allReady = await followStackerfiles(cluster, objects, namespace, pollCount, isReady);
  // A cycle's checks must fit its 2 s: at the default 10 a second, 100 inputs take 8 s and ticks are skipped.
  let cpuPerCycle = 0;
  const operator = await startOperatorOn(cluster, namespace, ['--input-checks-per-second', String(pollInputs * 2), '--input-check-burst', String(pollInputs)]);
  let window: ProxiedRequest[];
  try {
    await allReady.reached;
    allReady.abort();
    // Settled: a cycle after all are Ready. The window starts half way between ticks (even seconds)
    // and spans whole cycles, so it holds exactly `pollCycles` of them.
    await sleep(2000);
    await sleep(2000 - (Date.now() % 2000) + 1000);
    const mark = proxy.requests.length;
    const cpuBefore = await cpuSeconds(operator.pid);
    await sleep(pollCycles * 2000);
    window = proxy.requests.slice(mark);
    cpuPerCycle = ((await cpuSeconds(operator.pid)) - cpuBefore) / pollCycles;
  } finally {
    await stopOperator(operator);
  }
  const byKind = countBy(window, (request) => `${request.method} ${/\/manifests\//.test(request.path) ? 'manifest' : request.path === '/v2/' ? '/v2/' : 'other'}`);
  console.error(`bench operator-updates: poll requests over ${pollCycles} cycles by kind: ${JSON.stringify(byKind)}`);

  const poller = new Poller({ index });
  await poller.poll(everyTwoSeconds);
  const mark = proxy.requests.length;
  await poller.poll(everyTwoSeconds);
  poller.stop();
  const alone = proxy.requests.length - mark;
  const perCycle = window.length / pollCycles;
  return [
    { bench: 'op poll', metric: `poll: ${pollCount} Stackerfiles, ${pollInputs} inputs`, value: perCycle, unit: 'req/cycle', reference: { name: 'poller alone', value: alone }, target: `${pollInputs} a cycle`, met: perCycle === pollInputs },
    { bench: 'op poll', metric: 'operator CPU a cycle, settled', value: cpuPerCycle * 1000, unit: 'ms' },
  ];
}

/** A cluster, a registry on tmpfs and a counting proxy in front of it, for `run`; all stopped after. */
async function withUpdatesSetup(run: (setup: UpdatesSetup) => Promise<BenchRow[]>): Promise<BenchRow[]> {
  const cluster = await useCluster();
  const registry = await startRegistry({ parentDirectory: '/dev/shm' });
  const proxy = await startFaultyProxy(registry.url);
  try {
    const objects = pooledObjects(cluster);
    await installCrds(cluster);
    return await run({ cluster, objects, registryHost: registry.host, proxy });
  } finally {
    await proxy.stop();
    await registry.stop();
    await cluster.stop();
  }
}

/**
 * The operator keeping images current (issue 7): a python3 bump fanned out to many images, and
 * the registry requests of polling many Stackerfiles on few inputs. The registry is behind a
 * counting proxy, on tmpfs.
 */
export function operatorUpdatesBench(): Promise<BenchRow[]> {
  return withUpdatesSetup(async (setup) => [...(await fanOutBench(setup)), ...(await pollCostBench(setup))]);
}

/**
 * The fan-out alone (`npm run bench -- operator-fanout`): RESTACK_BENCH_FANOUT images (1,000)
 * swapped through the operator against the engine alone in the same run (issue 16: <= 1.5x).
 */
export function operatorFanOutBench(): Promise<BenchRow[]> {
  return withUpdatesSetup(fanOutBench);
}

/** The poll cost alone (`npm run bench -- operator-poll`): its 10,000 Stackerfiles take most of operator-updates' time. */
export function operatorPollBench(): Promise<BenchRow[]> {
  return withUpdatesSetup(pollCostBench);
}
