import { readStoredImage, type OpenedReference, type StoredImage } from '../engine/images.ts';
import { openReferences } from '../engine/open-reference.ts';
import type { LayerChangesCache } from '../engine/layer-changes.ts';
import { swapDependency } from '../engine/swap.ts';
import { LruCache } from '../oci/lru.ts';
import { formatReference, parseReference, withDigest } from '../oci/reference.ts';
import { credentialsFromDockerConfigJson } from '../oci/registry/credential-provider.ts';
import type { ImageBuild, Kube, Stackerfile } from './kube.ts';
import type { ImageBuildStatus, StackerfileStatus } from './resources.ts';

type Check = NonNullable<ImageBuildStatus['checks']>[number];
type Output = NonNullable<ImageBuildStatus['outputs']>[number];
type PublishedImage = NonNullable<StackerfileStatus['images']>[number];

export interface SwapRun {
  outputs: Output[];
  checks: Check[];
}

/** Opens references of one Stackerfile's registry (its insecure flag, its push credentials). */
export type Opener = (ref: string) => OpenedReference;

/**
 * The dependencies of recent swaps as read, by pinned reference: a fan-out swaps one version into
 * many images, and a digest's content never changes, so it is read once, not once per image.
 */
export class DependencyImages {
  readonly #images: LruCache<string, Promise<StoredImage>>;

  constructor(capacity = 64) {
    this.#images = new LruCache(capacity);
  }

  get(pinnedDependency: OpenedReference): Promise<StoredImage> {
    const key = pinnedDependency.display;
    let image = this.#images.get(key);
    if (image === undefined) {
      image = readStoredImage(pinnedDependency);
      image.catch(() => this.#images.delete(key));
      this.#images.set(key, image);
    }
    return image;
  }

  get size(): number {
    return this.#images.size;
  }
}

/** The reference pinned to the digest the watcher saw, so every image of a fan-out gets the same version. */
export function pinned(ref: string, digest: string): string {
  return formatReference(withDigest(parseReference(ref), digest));
}

/**
 * Runs a Swap ImageBuild in the operator, without a pod: for each image named, swaps each changed
 * applied input to the digest pinned in the spec. The engine writes every blob and manifest by
 * digest before it moves the tag, so running this again after a crash finishes the same swap
 * (the images already swapped report UpToDate). A refused swap leaves the image as it was and
 * says why; the Stackerfile controller then starts a rebuild.
 */
export async function runSwap(build: ImageBuild, stackerfile: Stackerfile, open: Opener, layerChanges: LayerChangesCache, dependencies: DependencyImages): Promise<SwapRun> {
  const published = new Map((stackerfile.status?.images ?? []).map((image) => [image.name, image]));
  const tags = stackerfile.spec.output.tags ?? ['latest'];
  const changed = (build.spec.inputs ?? []).filter((input) => input.role === 'apply' && input.digest !== undefined);
  const run: SwapRun = { outputs: [], checks: [] };
  for (const name of build.spec.images ?? []) {
    const image = published.get(name);
    if (image === undefined) {
      for (const input of changed) {
        run.checks.push({ image: name, dependency: input.ref, from: '', to: input.digest ?? '', result: 'Refused', reason: 'NotPublished', message: `${name} is not in the Stackerfile's status.images; it is built, not swapped` });
      }
      continue;
    }
    const output = await swapImage(image, changed, open, tags, { layerChanges, dependencies }, run.checks);
    if (output !== undefined) run.outputs.push(output);
  }
  return run;
}

async function swapImage(
  image: PublishedImage,
  changed: readonly { ref: string; digest?: string | undefined }[],
  open: Opener,
  tags: readonly string[],
  caches: { layerChanges: LayerChangesCache; dependencies: DependencyImages },
  checks: Check[],
): Promise<Output | undefined> {
  let inputs = image.inputs ?? [];
  let digest = image.digest;
  let refused = false;
  for (const input of changed) {
    const recorded = inputs.find((candidate) => candidate.ref === input.ref && candidate.role === 'apply');
    if (recorded === undefined || input.digest === undefined) continue;
    const dependency = open(pinned(input.ref, input.digest));
    const target = open(image.ref);
    const outcome = await swapDependency({
      target,
      // Every tag of spec.output.tags moves with the one the status names, as a build pushes them all.
      extraTags: tags.filter((tag) => tag !== target.ref.tag),
      dependency,
      dependencyImage: await caches.dependencies.get(dependency),
      layerChanges: caches.layerChanges,
    });
    const check = { image: image.name, dependency: input.ref, from: recorded.digest ?? '', to: input.digest };
    if (outcome.refusal !== undefined) {
      checks.push({ ...check, result: 'Refused', reason: outcome.refusal.reason, message: outcome.refusal.message });
      refused = true;
      continue;
    }
    const layers = outcome.platforms.map((p) => `${p.platform} ${p.oldSlice.length} -> ${p.newSlice.length} layer(s)`).join(', ');
    checks.push({
      ...check,
      result: outcome.status === 'swapped' ? 'Swapped' : 'UpToDate',
      message:
        outcome.status === 'swapped'
          ? `same base, no path changed by the layers above: ${layers}; ${outcome.before} -> ${outcome.after}`
          : `already at ${input.digest}`,
    });
    digest = outcome.after;
    inputs = inputs.map((candidate) => (candidate === recorded ? { ...candidate, digest: input.digest } : candidate));
  }
  if (refused && digest === image.digest) return undefined;
  return { name: image.name, ref: image.ref, digest, before: image.digest, inputs };
}

/** Opens a Stackerfile's registry as its output says: plain http when insecure, its push Secret's credentials. */
export async function stackerfileOpener(kube: Kube, stackerfile: Stackerfile): Promise<Opener> {
  const { output } = stackerfile.spec;
  const namespace = stackerfile.metadata?.namespace ?? 'default';
  const secret = output.pushSecretRef?.name;
  // Read once per swap: the stores it opens would each ask a lazy provider, one Secret read per image and repository.
  const credentials = secret === undefined ? undefined : credentialsFromDockerConfigJson(await kube.dockerConfigJson(namespace, secret), `Secret ${namespace}/${secret}`);
  return openReferences({ ...(output.insecure === true ? { insecure: true } : {}), ...(credentials === undefined ? {} : { credentials }) });
}
