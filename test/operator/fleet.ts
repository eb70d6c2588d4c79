// Many Stackerfiles whose images are already published and up to date, made quickly: the images
// are composed in the registry (no build), the Stackerfiles get the status and the Succeeded
// ImageBuild a build would have left. For fan-out tests and the operator benchmarks.
import { PatchStrategy, setHeaderOptions, type CustomObjectsApi } from '@kubernetes/client-node';
import { composeToStore } from '../../src/engine/compose.ts';
import type { ImageBuild, Stackerfile } from '../../src/operator/kube.ts';
import { buildDigests } from '../../src/operator/build-digest.ts';
import { specBuildName } from '../../src/operator/stackerfile-controller.ts';
import type { OpenedReference } from '../../src/engine/images.ts';
import { makeLayer, type BuiltLayer } from '../services/images.ts';
import { open, pushLayered } from '../swap/seeds.ts';

const api = { group: 'restack.dev', version: 'v1alpha1' };
const mergeHeader = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

export interface FleetInputs {
  base: BuiltLayer;
  ssl: BuiltLayer;
  python3: BuiltLayer;
  /** Manifest digests of base, ssl and python3 as pushed. */
  digests: { base: string; ssl: string; python3: string };
  refs: { base: string; ssl: string; python3: string };
}

/** base, ssl = base + ssl's layer, python3 = base + python3's layer, under `docker://prefix`. */
export async function pushFleetInputs(prefix: string): Promise<FleetInputs> {
  const base = await makeLayer({ 'etc/os-release': 'ID=tiny\n', 'bin/sh': '#!sh\n' });
  const ssl = await makeLayer({ 'usr/lib/libssl.so.3': 'ssl 3.0\n' });
  const python3 = await makeLayer({ 'usr/bin/python3': 'python 3.11\n' });
  const refs = { base: `docker://${prefix}/base:latest`, ssl: `docker://${prefix}/ssl:latest`, python3: `docker://${prefix}/python3:latest` };
  const digests = {
    base: await pushLayered(`docker://${prefix}`, 'base', [base]),
    ssl: await pushLayered(`docker://${prefix}`, 'ssl', [base, ssl]),
    python3: await pushLayered(`docker://${prefix}`, 'python3', [base, python3]),
  };
  return { base, ssl, python3, digests, refs };
}

/** python3+1: the same base, a new python3 layer; its new digest. */
export async function bumpPython3(prefix: string, fleet: FleetInputs, version: string): Promise<string> {
  const python3 = await makeLayer({ 'usr/bin/python3': `python ${version}\n` });
  return pushLayered(`docker://${prefix}`, 'python3', [fleet.base, python3]);
}

/**
 * Another python3 (base + a layer of its own) pushed as `<prefix>/<repository>:latest`: the same
 * fleet with that as its python3, for fleets whose Stackerfiles watch more distinct inputs.
 */
export async function python3Flavour(prefix: string, fleet: FleetInputs, repository: string): Promise<FleetInputs> {
  const python3 = await makeLayer({ 'usr/bin/python3': `python 3.11 (${repository})\n` });
  const digest = await pushLayered(`docker://${prefix}`, repository, [fleet.base, python3]);
  return { ...fleet, python3, digests: { ...fleet.digests, python3: digest }, refs: { ...fleet.refs, python3: `docker://${prefix}/${repository}:latest` } };
}

export function appRecipe(name: string, fleet: FleetInputs): string {
  return `${name}:\n  from: {type: docker, url: "${fleet.refs.base}"}\n  apply:\n    - ${fleet.refs.ssl}\n    - ${fleet.refs.python3}\n  run: echo ${name} > /srv/${name}\n`;
}

async function pool<T>(items: readonly T[], concurrency: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) await work(items[next++] as T);
    }),
  );
}

/** Reads of an input's store made once and shared: every image of a fleet composes the same three inputs. */
const memoizedReads = new Set<PropertyKey>(['resolve', 'getManifest', 'readBlob']);

/** `opened` with its manifests and blobs read once, however many images are composed from it. */
function readOnce(opened: OpenedReference): OpenedReference {
  const reads = new Map<string, unknown>();
  const store = new Proxy(opened.store, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property, target);
      if (typeof value !== 'function') return value;
      const method = (value as (...args: unknown[]) => unknown).bind(target);
      if (!memoizedReads.has(property)) return method;
      return (...args: unknown[]) => {
        const key = JSON.stringify([String(property), args]);
        if (!reads.has(key)) reads.set(key, method(...args));
        return reads.get(key);
      };
    },
  });
  return { ...opened, store };
}

export interface FleetOptions {
  objects: CustomObjectsApi;
  namespace: string;
  prefix: string;
  fleet: FleetInputs;
  names: readonly string[];
  schedule: string;
  /** Images composed and Stackerfiles written at once (default 16). */
  concurrency?: number;
  onProgress?: (done: number) => void;
}

/**
 * For each name: an image `<prefix>/<name>:latest` = compose(base; ssl, python3) + its own layer,
 * a Stackerfile whose recipe makes it, and that Stackerfile's Succeeded generation ImageBuild and
 * status, as the operator would have left them. Returns the images' digests by name.
 */
export async function seedFleet(options: FleetOptions): Promise<Map<string, string>> {
  const { objects, namespace, prefix, fleet } = options;
  const digests = new Map<string, string>();
  let done = 0;
  const [base, ssl, python3] = [fleet.refs.base, fleet.refs.ssl, fleet.refs.python3].map((input) => readOnce(open(input))) as [OpenedReference, OpenedReference, OpenedReference];
  await pool(options.names, options.concurrency ?? 16, async (name) => {
    const ref = `${prefix}/${name}:latest`;
    const target = open(`docker://${ref}`);
    const own = await makeLayer({ [`srv/${name}`]: `${name}\n` });
    await target.store.putBlob(target.repository, own.descriptor, own.bytes);
    const composed = await composeToStore({
      base,
      applied: [ssl, python3],
      target,
      own: [{ descriptor: own.descriptor, diffId: own.diffId, history: { created_by: `run: echo ${name}` } }],
    });
    digests.set(name, composed.digest);
    const recipe = appRecipe(name, fleet);
    const created = (await objects.createNamespacedCustomObject({
      ...api,
      namespace,
      plural: 'stackerfiles',
      body: {
        apiVersion: 'restack.dev/v1alpha1',
        kind: 'Stackerfile',
        metadata: { name },
        spec: { recipe, output: { registry: prefix, insecure: true }, updates: { schedule: options.schedule } },
      },
    })) as Stackerfile;
    const pinned = buildDigests(created.spec, recipe);
    const buildName = specBuildName(created, pinned.buildDigest, undefined);
    const inputs = [
      { ref: fleet.refs.base, role: 'from' as const, digest: fleet.digests.base },
      { ref: fleet.refs.ssl, role: 'apply' as const, digest: fleet.digests.ssl },
      { ref: fleet.refs.python3, role: 'apply' as const, digest: fleet.digests.python3 },
    ];
    const now = new Date().toISOString();
    const build: ImageBuild = {
      apiVersion: 'restack.dev/v1alpha1',
      kind: 'ImageBuild',
      metadata: {
        name: buildName,
        labels: { 'restack.dev/stackerfile': name },
        ownerReferences: [{ apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', name, uid: created.metadata?.uid ?? '', controller: true, blockOwnerDeletion: true }],
      },
      spec: { stackerfileRef: { name }, strategy: 'Build', reason: 'Initial', recipeGeneration: created.metadata?.generation ?? 1, ...pinned },
    };
    await objects.createNamespacedCustomObject({ ...api, namespace, plural: 'imagebuilds', body: build });
    const output = { name, ref, digest: composed.digest, inputs };
    await objects.patchNamespacedCustomObjectStatus(
      { ...api, namespace, plural: 'imagebuilds', name: buildName, body: { status: { phase: 'Succeeded', startTime: now, completionTime: now, outputs: [output] } } },
      mergeHeader,
    );
    await objects.patchNamespacedCustomObjectStatus(
      {
        ...api,
        namespace,
        plural: 'stackerfiles',
        name,
        body: { status: { images: [{ ...output, lastChange: { strategy: 'Build', reason: 'Initial', at: now, imageBuild: buildName } }], imageCount: 1, latestImageBuild: buildName } },
      },
      mergeHeader,
    );
    options.onProgress?.(++done);
  });
  return digests;
}
