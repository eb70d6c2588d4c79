import { randomBytes } from 'node:crypto';
import { execa } from 'execa';
import { composeToStore } from '../src/engine/compose.ts';
import { readStoredImage } from '../src/engine/images.ts';
import { LayerChangesCache } from '../src/engine/layer-changes.ts';
import type { ImageSigning } from '../src/engine/signing.ts';
import { DependencyImages } from '../src/operator/swap-runner.ts';
import { swapDependency, type SwapOutcome } from '../src/engine/swap.ts';
import { RegistryStore } from '../src/oci/registry/store.ts';
import { makeLayer, type BuiltLayer } from '../test/services/images.ts';
import { startRegistry } from '../test/services/registry.ts';
import { startFaultyProxy } from '../test/services/faulty-proxy.ts';
import { open, pushLayered } from '../test/swap/seeds.ts';
import { timed, type BenchRow } from './report.ts';

export const fanOutImages = Number(process.env['RESTACK_BENCH_FANOUT'] ?? 1000);
export const concurrency = Number(process.env["RESTACK_BENCH_CONCURRENCY"] ?? 8);

/** Runs `work` over items with at most `limit` in flight. */
export async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await work(items[next++] as T);
  }));
}

/**
 * One dependency bump swapped into `<prefix>/<name>:latest` for every name, `limit` at a time, by
 * the engine alone: the dependency is read once and its layer listings are shared. Throws on the
 * first image not swapped; `afterSharedRead` runs once the dependency is read. Returns the first
 * outcome (every image of a fan-out has the same slices).
 */
export async function swapFanOut(
  prefix: string,
  names: readonly string[],
  dependencyRef: string,
  limit: number,
  afterSharedRead: () => void = () => {},
  signing?: ImageSigning,
): Promise<SwapOutcome> {
  const layerChanges = new LayerChangesCache();
  const dependency = open(dependencyRef);
  const dependencies = new DependencyImages();
  await dependencies.get(dependency);
  afterSharedRead();
  let first: SwapOutcome | undefined;
  await eachLimited(names, limit, async (name) => {
    const outcome = await swapDependency({
      target: open(`${prefix}/${name}:latest`),
      dependency,
      readDependency: (opened) => dependencies.get(opened),
      layerChanges,
      ...(signing === undefined ? {} : { signing }),
    });
    if (outcome.status !== 'swapped') throw new Error(`${name}: ${outcome.refusal?.message ?? outcome.status}`);
    first ??= outcome;
  });
  if (first === undefined) throw new Error('a fan-out needs at least one image');
  return first;
}

/**
 * base, ssl and python3 pushed under `prefix` with layers of the given sizes, and python3's next
 * version (not pushed). Incompressible contents, so layer sizes are what is moved.
 */
export async function pushInputs(prefix: string, bytes: { base: number; ssl: number; python3: number }): Promise<Record<'base' | 'ssl' | 'python3' | 'python3Next', BuiltLayer>> {
  const base = await makeLayer({ 'usr/lib/base.bin': randomBytes(bytes.base) });
  const ssl = await makeLayer({ 'usr/lib/libssl.so.3': randomBytes(bytes.ssl) });
  const python3 = await makeLayer({ 'usr/lib/python3.11/lib.bin': randomBytes(bytes.python3) });
  const python3Next = await makeLayer({ 'usr/lib/python3.12/lib.bin': randomBytes(bytes.python3) });
  await pushLayered(prefix, 'base', [base]);
  await pushLayered(prefix, 'ssl', [base, ssl]);
  await pushLayered(prefix, 'python3', [base, python3]);
  return { base, ssl, python3, python3Next };
}

/** `<prefix>/<name>:latest` = base + ssl + python3 (as pushed under `prefix`) + an own layer of `ownBytes` random bytes. */
export async function composeApp(prefix: string, name: string, ownBytes: number): Promise<void> {
  const own = await makeLayer({ [`srv/${name}/app.bin`]: randomBytes(ownBytes) });
  const target = open(`${prefix}/${name}:latest`);
  await target.store.putBlob(target.repository, own.descriptor, own.bytes);
  await composeToStore({
    base: open(`${prefix}/base:latest`),
    applied: [open(`${prefix}/ssl:latest`), open(`${prefix}/python3:latest`)],
    target,
    own: [{ descriptor: own.descriptor, diffId: own.diffId, history: { created_by: `run ${name}` } }],
  });
}

export function registryStats(ref: string) {
  const { store } = open(ref);
  if (!(store instanceof RegistryStore)) throw new Error('bench needs a registry store');
  return store.stats;
}

/**
 * A swap of python3 inside A against the two ways of getting the same image another way:
 * `skopeo copy` of A to a new tag (through a counting proxy) and a full re-push of A's blobs.
 * Then one python3 bump fanned out to many images that apply it.
 */
export async function swapBench(): Promise<BenchRow[]> {
  // The registry's storage on tmpfs: the bench measures restack's requests, not this disk.
  const registry = await startRegistry({ parentDirectory: '/dev/shm' });
  const proxy = await startFaultyProxy(registry.url);
  const rows: BenchRow[] = [];
  try {
    const prefix = `docker://${registry.host}/bench`;
    const { base, ssl, python3, python3Next } = await pushInputs(prefix, { base: 24 << 20, ssl: 4 << 20, python3: 8 << 20 });

    const composeA = (name: string, ownBytes = 1 << 20) => composeApp(prefix, name, ownBytes);
    await composeA('a');
    const layerBytes = [base, ssl, python3Next].reduce((sum, layer: BuiltLayer) => sum + layer.descriptor.size, 0);

    // The references, measured first on A before the swap: the same bytes a rebuild would move.
    const skopeo = await timed(() =>
      execa('skopeo', ['copy', '--src-tls-verify=false', '--dest-tls-verify=false', `docker://${proxy.host}/bench/a:latest`, `docker://${proxy.host}/bench/a-copy:latest`]),
    );
    const skopeoRequests = proxy.requests.length;
    const stats = registryStats(`${prefix}/a:latest`);
    stats.reset();
    const repush = await timed(async () => {
      const image = await readStoredImage(open(`${prefix}/a:latest`));
      const target = open(`${prefix}/a-repush-${Date.now()}:latest`);
      const source = open(`${prefix}/a:latest`);
      const manifest = image.platforms[0]?.image.manifest;
      if (manifest === undefined) throw new Error('no manifest');
      for (const blob of [manifest.config, ...manifest.layers]) {
        await target.store.putBlob(target.repository, blob, await source.store.readBlob(source.repository, blob));
      }
    });
    const repushRequests = stats.requests;
    const repushBytes = stats.blobBytesSent;

    await pushLayered(prefix, 'python3', [base, python3Next]);
    stats.reset();
    const swap = await timed(() =>
      swapDependency({ target: open(`${prefix}/a:latest`), dependency: open(`${prefix}/python3:latest`), layerChanges: new LayerChangesCache() }),
    );
    if (swap.result.status !== 'swapped') throw new Error(`swap did not happen: ${swap.result.refusal?.message ?? swap.result.status}`);
    const swapStats = stats.snapshot();
    rows.push(
      { bench: 'swap', metric: 'wall time, swap of python3 in A', value: swap.seconds, unit: 's', reference: { name: 'skopeo copy', value: skopeo.seconds } },
      { bench: 'swap', metric: 'wall time, swap of python3 in A', value: swap.seconds, unit: 's', reference: { name: 'blob re-push', value: repush.seconds } },
      { bench: 'swap', metric: 'requests', value: swapStats.requests, unit: 'req', reference: { name: 'skopeo copy', value: skopeoRequests } },
      { bench: 'swap', metric: 'requests', value: swapStats.requests, unit: 'req', reference: { name: 'blob re-push', value: repushRequests } },
      { bench: 'swap', metric: 'blob bytes sent (config only)', value: swapStats.blobBytesSent, unit: 'B', reference: { name: 'blob re-push', value: repushBytes } },
      { bench: 'swap', metric: 'layer bytes a rebuild would push', value: layerBytes, unit: 'B' },
    );

    // Fan-out: many images apply python3; one bump is swapped into all of them.
    const names = Array.from({ length: fanOutImages }, (_, index) => `fan-${index}`);
    await pushLayered(prefix, 'python3', [base, python3]);
    // Each image's own layer is a small application (64 KiB); a swap lists it for the overlap check.
    const setup = await timed(() => eachLimited(names, concurrency, (name) => composeA(name, 64 << 10)));
    await pushLayered(prefix, 'python3', [base, python3Next]);
    stats.reset();
    // Once per fan-out, not per image: reading the dependency, and listing its old and new slice
    // (the listings are cached by digest).
    let sharedRequests = 0;
    const fanOut = await timed(() => swapFanOut(prefix, names, `${prefix}/python3:latest`, concurrency, () => (sharedRequests = stats.requests)));
    sharedRequests += fanOut.result.platforms.reduce((sum, platform) => sum + platform.oldSlice.length + platform.newSlice.length, 0);
    const fanOutStats = stats.snapshot();
    rows.push(
      { bench: 'fan-out', metric: `setup: compose ${fanOutImages} images`, value: setup.seconds, unit: 's' },
      { bench: 'fan-out', metric: `swap python3 in ${fanOutImages} images`, value: fanOut.seconds, unit: 's', target: '< 30 s', met: fanOut.seconds < 30 },
      { bench: 'fan-out', metric: `requests per image (+${sharedRequests} shared)`, value: (fanOutStats.requests - sharedRequests) / fanOutImages, unit: 'req', target: '<= 8', met: (fanOutStats.requests - sharedRequests) / fanOutImages <= 8 },
      { bench: 'fan-out', metric: 'blob bytes sent per image (config)', value: fanOutStats.blobBytesSent / fanOutImages, unit: 'B' },
    );
    console.error(`fan-out requests by method: ${JSON.stringify(fanOutStats.requestsByMethod)}`);
  } finally {
    await proxy.stop();
    await registry.stop();
  }
  return rows;
}
