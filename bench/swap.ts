import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { execa } from 'execa';
import { composeToStore } from '../src/engine/compose.ts';
import { readStoredImage } from '../src/engine/images.ts';
import { LayerChangesCache, listBlobChanges } from '../src/engine/layer-changes.ts';
import type { ImageSigning } from '../src/engine/signing.ts';
import { recordLayerChanges } from '../src/swap/layer-record.ts';
import { DependencyImages } from '../src/operator/swap-runner.ts';
import { swapDependency, type SwapOutcome } from '../src/engine/swap.ts';
import { RegistryStore } from '../src/oci/registry/store.ts';
import { makeLayer, type BuiltLayer } from '../test/services/images.ts';
import { startRegistry } from '../test/services/registry.ts';
import { startFaultyProxy } from '../test/services/faulty-proxy.ts';
import { open, pushLayered } from '../test/swap/seeds.ts';
import { eachLimited } from './limit.ts';
import { RawRegistry, rawFanOut, type RawLayerSwap } from './raw-swap.ts';
import { timed, type BenchRow } from './report.ts';

export const fanOutImages = Number(process.env['RESTACK_BENCH_FANOUT'] ?? 1000);
/** Swaps in flight at once in the engine's fan-out (the registry store adapts its requests in flight). */
export const concurrency = Number(process.env['RESTACK_BENCH_CONCURRENCY'] ?? 32);
/** CPU seconds this process used since `start` (a process.cpuUsage() value). */
function cpuSeconds(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** Rounds of the fan-out runs, interleaved; each keeps its best time. */
const rounds = Number(process.env['RESTACK_BENCH_ROUNDS'] ?? 2);
/** Workers of the raw-HTTP reference, each measured on the same images. */
const referenceWorkers = [8, 32];

/**
 * One dependency bump swapped into `<prefix>/<name>:latest` for every name, `limit` at a time, by
 * the engine alone: the dependency is read once and its layer listings are shared. Throws on the
 * first image not swapped; `afterSharedRead` runs once the dependency is read. Returns the first
 * outcome (every image of a fan-out has the same slices). With `recordKey`, layers whose change
 * records verify under it are not read.
 */
export async function swapFanOut(
  prefix: string,
  names: readonly string[],
  dependencyRef: string,
  limit: number,
  afterSharedRead: () => void = () => {},
  recordKey?: Uint8Array,
  signing?: ImageSigning,
): Promise<SwapOutcome> {
  const layerChanges = new LayerChangesCache();
  const dependency = open(dependencyRef);
  const dependencies = new DependencyImages();
  await dependencies.get(dependency, 'anonymous');
  afterSharedRead();
  let first: SwapOutcome | undefined;
  await eachLimited(names, limit, async (name) => {
    const outcome = await swapDependency({
      target: open(`${prefix}/${name}:latest`),
      dependency,
      readDependency: (opened) => dependencies.get(opened, 'anonymous'),
      layerChanges,
      ...(recordKey === undefined ? {} : { layerRecordKey: recordKey }),
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

/**
 * `<prefix>/<name>:latest` = base + ssl + python3 (as pushed under `prefix`) + an own layer of
 * `ownBytes` random bytes, whose changes are recorded under `recordKey` as a build records them.
 */
export async function composeApp(prefix: string, name: string, ownBytes: number, recordKey: Uint8Array): Promise<void> {
  const own = await makeLayer({ [`srv/${name}/app.bin`]: randomBytes(ownBytes) });
  const changes = await listBlobChanges(Readable.from(Buffer.from(own.bytes)), own.descriptor);
  const descriptor = 'entries' in changes ? recordLayerChanges(own.descriptor, changes.entries, recordKey) : own.descriptor;
  const target = open(`${prefix}/${name}:latest`);
  await target.store.putBlob(target.repository, own.descriptor, own.bytes);
  await composeToStore({
    base: open(`${prefix}/base:latest`),
    applied: [open(`${prefix}/ssl:latest`), open(`${prefix}/python3:latest`)],
    target,
    own: [{ descriptor, diffId: own.diffId, history: { created_by: `run ${name}` } }],
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

    // Builds record their own layers' changes, signed with the builders' key (swap/layer-record.ts).
    const recordKey = randomBytes(32);
    const composeA = (name: string, ownBytes = 1 << 20) => composeApp(prefix, name, ownBytes, recordKey);
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

    // Fan-out: many images apply python3; one bump is swapped into all of them, by the engine and,
    // side by side on the same images, by the raw-HTTP reference (bench/raw-swap.ts).
    const names = Array.from({ length: fanOutImages }, (_, index) => `fan-${index}`);
    await pushLayered(prefix, 'python3', [base, python3]);
    // Each image's own layer is a small application (64 KiB); a swap lists it for the overlap check.
    const setup = await timed(() => eachLimited(names, concurrency, (name) => composeA(name, 64 << 10)));
    rows.push({ bench: 'fan-out', metric: `setup: compose ${fanOutImages} images`, value: setup.seconds, unit: 's' });
    const raw = new RawRegistry(registry.url);
    const repositories = names.map((name) => `bench/${name}`);
    const originals = new Map<string, Uint8Array>();
    await eachLimited(repositories, concurrency, async (repository) => void originals.set(repository, await raw.getManifest(repository, 'latest')));
    // Every run starts from the same images and mounts a layer no repository has yet.
    const restore = () => eachLimited(repositories, concurrency, (repository) => raw.putManifest(repository, 'latest', originals.get(repository) as Uint8Array));
    // The reference at 8 and 32 workers, and the engine on the same images: reading their own
    // layers (as for images built without the key), then trusting their signed change records.
    // The machine is shared, so the runs are interleaved over rounds and each keeps its best time.
    type Variant = { name: string; workers: number; engine: boolean; key?: Uint8Array; seconds: number; cpu: number; requests: number; shared: number; blobBytes: number };
    const variants: Variant[] = [
      ...referenceWorkers.map((workers) => ({ name: `reference: raw HTTP, ${workers} workers`, workers, engine: false })),
      { name: `engine, reading own layers, ${concurrency} workers`, workers: concurrency, engine: true },
      { name: `engine, signed change records, ${concurrency} workers`, workers: concurrency, engine: true, key: recordKey },
    ].map((variant) => ({ ...variant, seconds: Number.POSITIVE_INFINITY, cpu: Number.POSITIVE_INFINITY, requests: 0, shared: 0, blobBytes: 0 }));
    for (let round = 0; round < rounds; round++) {
      for (const variant of variants) {
        // each run mounts a layer that no image's repository has yet
        const next = await makeLayer({ 'usr/lib/python3.12/lib.bin': randomBytes(8 << 20) });
        if (variant.engine) {
          await pushLayered(prefix, 'python3', [base, next]);
          stats.reset();
          // Once per fan-out, not per image: reading the dependency, and listing its old and new
          // slice (the listings are cached by digest).
          let shared = 0;
          const cpu = process.cpuUsage();
          const run = await timed(() => swapFanOut(prefix, names, `${prefix}/python3:latest`, variant.workers, () => (shared = stats.requests), variant.key));
          variant.cpu = Math.min(variant.cpu, cpuSeconds(cpu));
          shared += run.result.platforms.reduce((sum, platform) => sum + platform.oldSlice.length + platform.newSlice.length, 0);
          Object.assign(variant, { seconds: Math.min(variant.seconds, run.seconds), requests: stats.requests - shared, shared, blobBytes: stats.blobBytesSent });
          console.error(`${variant.name}: ${run.seconds.toFixed(3)} s, requests by method ${JSON.stringify(stats.requestsByMethod)}, concurrency limit at the end ${stats.concurrencyLimit}`);
        } else {
          await pushLayered(prefix, 'python3-reference', [base, next]);
          const swap: RawLayerSwap = {
            from: { digest: python3.descriptor.digest, diffId: python3.diffId },
            to: { ...next.descriptor, diffId: next.diffId, repository: 'bench/python3-reference' },
          };
          const cpu = process.cpuUsage();
          const run = await timed(() => rawFanOut(raw, repositories, 'latest', swap, variant.workers));
          variant.cpu = Math.min(variant.cpu, cpuSeconds(cpu));
          Object.assign(variant, { seconds: Math.min(variant.seconds, run.seconds), requests: run.result });
          console.error(`${variant.name}: ${run.seconds.toFixed(3)} s`);
        }
        await restore();
      }
    }
    const references = variants.filter((variant) => !variant.engine);
    const fastest = references.reduce((best, run) => (run.seconds < best.seconds ? run : best));
    for (const variant of variants) {
      const perImage = variant.requests / fanOutImages;
      const label = `${variant.name}, best of ${rounds}`;
      if (!variant.engine) {
        rows.push(
          { bench: 'fan-out', metric: label, value: variant.seconds, unit: 's' },
          { bench: 'fan-out', metric: `${variant.name}: requests per image`, value: perImage, unit: 'req' },
          { bench: 'fan-out', metric: `${variant.name}: client CPU`, value: variant.cpu, unit: 's' },
        );
        continue;
      }
      const ratio = variant.seconds / fastest.seconds;
      rows.push(
        { bench: 'fan-out', metric: label, value: variant.seconds, unit: 's', reference: { name: fastest.name, value: fastest.seconds } },
        { bench: 'fan-out', metric: `${variant.name}: fan-out / fastest reference`, value: ratio, unit: 'x', target: '<= 1.3', met: ratio <= 1.3 },
        // this process's CPU (the registry's is the same work for the same requests): steadier than wall time on a shared machine
        { bench: 'fan-out', metric: `${variant.name}: client CPU`, value: variant.cpu, unit: 's', reference: { name: fastest.name, value: fastest.cpu } },
        { bench: 'fan-out', metric: `${variant.name}: requests per image (+${variant.shared} shared)`, value: perImage, unit: 'req', reference: { name: 'raw HTTP', value: fastest.requests / fanOutImages }, target: '<= 5', met: perImage <= 5 },
        { bench: 'fan-out', metric: `${variant.name}: blob bytes sent per image (config)`, value: variant.blobBytes / fanOutImages, unit: 'B' },
      );
    }
  } finally {
    await proxy.stop();
    await registry.stop();
  }
  return rows;
}
