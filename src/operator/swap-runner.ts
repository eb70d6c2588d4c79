import { readStoredImage, type OpenedReference, type StoredImage } from '../engine/images.ts';
import type { LayerChangesCache } from '../engine/layer-changes.ts';
import type { ImageSigning } from '../engine/signing.ts';
import { swapDependency } from '../engine/swap.ts';
import { LruCache } from '../oci/lru.ts';
import { formatReference, parseReference, withDigest } from '../oci/reference.ts';
import { OciError } from '../oci/errors.ts';
import { SigningError } from '../sign/errors.ts';
import type { ImageBuild, Kube, Stackerfile } from './kube.ts';
import { outputOpener, type Opener } from './output-registry.ts';
import type { ImageBuildStatus, StackerfileStatus } from './resources.ts';

type Check = NonNullable<ImageBuildStatus['checks']>[number];
type Output = NonNullable<ImageBuildStatus['outputs']>[number];
type PublishedImage = NonNullable<StackerfileStatus['images']>[number];

/** What a Stackerfile's swaps run with: the operator's shared caches, and the Stackerfile's own keys. */
export interface SwapEngine {
  layerChanges: LayerChangesCache;
  dependencies: DependencyImages;
  signing?: ImageSigning;
  /** The Stackerfile's layer record key: records that verify under it are trusted (recordKeyOf). */
  layerRecordKey?: Uint8Array;
}

export interface SwapRun {
  outputs: Output[];
  checks: Check[];
}

/**
 * The dependencies of recent swaps as read, by reader and pinned reference: a fan-out swaps one
 * version into many images, and a digest's content never changes, so it is read once, not once
 * per image. One Stackerfile's read (with its Secret) never serves another reader.
 */
export class DependencyImages {
  readonly #images: LruCache<string, Promise<StoredImage>>;

  constructor(capacity = 64) {
    this.#images = new LruCache(capacity);
  }

  /** `reader` names the credentials the reference was opened with. */
  get(pinnedDependency: OpenedReference, reader: string): Promise<StoredImage> {
    const key = `${reader}\0${pinnedDependency.display}`;
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

/** Whose credentials a Stackerfile's swaps read with: its push Secret, or none. */
function readerOf(stackerfile: Stackerfile): string {
  const secret = stackerfile.spec.output.pushSecretRef?.name;
  return secret === undefined ? 'anonymous' : `Secret ${stackerfile.metadata?.namespace ?? 'default'}/${secret}`;
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
export async function runSwap(build: ImageBuild, stackerfile: Stackerfile, open: Opener, engine: SwapEngine): Promise<SwapRun> {
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
    const output = await swapImage(image, changed, open, tags, { ...engine, reader: readerOf(stackerfile) }, run.checks);
    if (output !== undefined) run.outputs.push(output);
  }
  return run;
}

async function swapImage(
  image: PublishedImage,
  changed: readonly { ref: string; digest?: string | undefined }[],
  open: Opener,
  tags: readonly string[],
  caches: SwapEngine & { reader: string },
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
      readDependency: (opened) => caches.dependencies.get(opened, caches.reader),
      layerChanges: caches.layerChanges,
      ...(caches.layerRecordKey === undefined ? {} : { layerRecordKey: caches.layerRecordKey }),
      ...(caches.signing === undefined ? {} : { signing: caches.signing }),
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

/** Opens a Stackerfile's registry with its output's settings and credentials (output-registry.ts). */
export function stackerfileOpener(kube: Kube, stackerfile: Stackerfile): Promise<Opener> {
  const { output } = stackerfile.spec;
  return outputOpener(kube, stackerfile.metadata?.namespace ?? 'default', { pushSecretName: output.pushSecretRef?.name, insecure: output.insecure === true });
}

/**
 * A swap that cannot be made with the Stackerfile's credentials or signing key, as the
 * ImageBuild's failure: a Secret is unusable, or the registry refused the credentials used (which,
 * and how to give the Stackerfile its own). Undefined for any other error.
 */
export function swapFailure(error: unknown, stackerfile: Stackerfile): string | undefined {
  // Both name spec.output.pushSecretRef or spec.output.signing.keySecretRef themselves.
  if (error instanceof SigningError || (error instanceof OciError && error.code === 'CREDENTIALS_INVALID')) return `${error.message}${error.hint === undefined ? '' : `; ${error.hint}`}`;
  if (!(error instanceof OciError) || (error.code !== 'UNAUTHORIZED' && error.code !== 'DENIED')) return undefined;
  const { output } = stackerfile.spec;
  const namespace = stackerfile.metadata?.namespace ?? 'default';
  const used =
    output.pushSecretRef === undefined
      ? 'no credentials: spec.output.pushSecretRef is not set, and the operator\'s own registry credentials serve input checks only'
      : `the credentials of spec.output.pushSecretRef (Secret ${namespace}/${output.pushSecretRef.name})`;
  return `the registry refused the swap with ${used}: ${error.message}; set spec.output.pushSecretRef to a kubernetes.io/dockerconfigjson Secret that can read and push ${output.registry}`;
}
