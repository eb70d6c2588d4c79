import type { KeyObject } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import { sha256Digest } from '../oci/digest.ts';
import { dockerHubRegistry, formatReference } from '../oci/reference.ts';
import type { Descriptor } from '../oci/types.ts';
import { signAndAttest, type AttachTarget, type SigningOutcome } from '../sign/attach.ts';
import { SigningError } from '../sign/errors.ts';
import { slsaPredicate, slsaProvenanceType, type DependencyChange, type Material, type ProvenanceFacts, type SlsaPredicate } from '../sign/provenance.ts';
import type { Signer } from '../sign/signer.ts';
import { verifyAttachments, type VerifiedAttachments } from '../sign/verify.ts';
import { manifestFormat, readProvenance, type ImageParts } from '../swap/image.ts';
import { recipeAnnotation } from './build/image-config.ts';
import { readStoredImage, type OpenedReference } from './images.ts';
import { packageVersion } from './version.ts';

/** How published images are signed: by whom, and what the provenance names as the builder. */
export interface ImageSigning {
  signer: Signer;
  /** SLSA builder.id: the builder image in a build pod, the operator's image for its swaps, else `pkg:npm/restack@VERSION`. */
  builderId: string;
  /** Recorded as the invocation's environment, e.g. restack's version. */
  environment: Record<string, string>;
}

/** Signing with restack's own identity as the builder: the CLI, and the operator for the swaps it runs itself. */
export function restackSigning(signer: Signer, builderId?: string): ImageSigning {
  const version = packageVersion();
  return { signer, builderId: builderId ?? `pkg:npm/restack@${version}`, environment: { restack: version } };
}

/** What a swap replaced, for the provenance of the image it made. */
export interface SwapRecord {
  /** The digest of the image the swap started from. */
  before: string;
  changes: DependencyChange[];
}

/** Where cosign looks for an image's signatures: its repository, named as go-containerregistry names it. */
export function attachTarget(opened: OpenedReference): AttachTarget {
  const { ref } = opened;
  if (ref.transport !== 'docker') {
    throw new SigningError('REGISTRY_REQUIRED', `${opened.display}: signatures are stored in a registry, and this is an OCI layout`, 'publish to a registry (docker://host/prefix) to sign, or leave out --sign-key');
  }
  const host = ref.registry === dockerHubRegistry ? 'index.docker.io' : ref.registry;
  return { store: opened.store, repository: opened.repository, name: `${host}/${ref.repository}` };
}

function recipeRecord(image: ImageParts): string | undefined {
  return manifestFormat(image.manifest) === 'docker' ? image.config.config?.Labels?.[recipeAnnotation] : image.manifest.annotations?.[recipeAnnotation];
}

/** The recipe layer an image is and the digest of its recorded recipe; undefined when the image records none. */
function recipeOf(images: readonly ImageParts[]): ProvenanceFacts['recipe'] {
  const record = images.map(recipeRecord).find((text) => text !== undefined);
  if (record === undefined) return undefined;
  const layer = Object.keys((parseYaml(record) ?? {}) as Record<string, unknown>)[0] ?? '';
  return { layer, digest: sha256Digest(new TextEncoder().encode(record)) };
}

/** Every input each platform's provenance records, in order: base, then what was applied. */
function materialsOf(images: readonly ImageParts[], source: string): Material[] {
  return images.flatMap((image) => {
    const provenance = readProvenance(image, source);
    if (provenance === undefined) return [];
    return [...(provenance.base === null ? [] : [provenance.base]), ...provenance.applied].map(({ ref, digest }) => ({ ref, digest }));
  });
}

/**
 * Signs the manifest `descriptor` (the image a tag is about to point at) and attests its SLSA
 * provenance, read from the image itself (one ImageParts per platform): the recipe digest, every
 * input, and for a swap what it replaced. Called after the image is written and before any tag
 * moves, so a tag never points at an unsigned image.
 */
export async function signImage(signing: ImageSigning, target: OpenedReference, descriptor: Descriptor, images: readonly ImageParts[], startedOn: Date, swapped?: SwapRecord): Promise<SigningOutcome> {
  const { tag: _tag, digest: _digest, ...unpinned } = target.ref;
  const repository = formatReference(unpinned);
  const facts: ProvenanceFacts = {
    repository,
    recipe: recipeOf(images),
    materials: [...(swapped === undefined ? [] : [{ ref: repository, digest: swapped.before }]), ...materialsOf(images, target.display)],
    ...(swapped === undefined ? {} : { swapped: { image: `${repository}@${swapped.before}`, changes: swapped.changes } }),
    startedOn: startedOn.toISOString(),
    finishedOn: new Date().toISOString(),
  };
  return signAndAttest(attachTarget(target), descriptor.digest, signing.signer, slsaProvenanceType, slsaPredicate(facts, signing.builderId, signing.environment));
}

/** Signs an image a build pushed, reading its platforms from the build's output layout rather than the registry. */
export async function signPushed(signing: ImageSigning, source: OpenedReference, target: OpenedReference, written: Descriptor, buildStarted: Date): Promise<void> {
  const { platforms } = await readStoredImage({ ...source, reference: written.digest });
  await signImage(signing, target, written, platforms.map((platform) => platform.image), buildStarted);
}

export interface ImageVerification {
  ref: string;
  digest: string;
  /** Signatures by the key over this digest. */
  signatures: number;
  /** The SLSA provenance of each attestation by the key about this digest. */
  provenance: SlsaPredicate[];
  /** Signature and attestation layers that did not verify (other keys, tampered). */
  rejected: VerifiedAttachments['rejected'];
}

/** Why an attested provenance does not describe the image it is attached to; undefined when it does. */
function mismatch(predicate: SlsaPredicate, recipe: ProvenanceFacts['recipe'], materials: readonly Material[]): string | undefined {
  const attestedRecipe = predicate.invocation?.configSource?.digest?.['sha256'];
  if (recipe !== undefined && attestedRecipe !== recipe.digest.slice('sha256:'.length)) {
    return `its recipe digest sha256:${attestedRecipe ?? 'none'} is not that of the image's ${recipeAnnotation} annotation (${recipe.digest})`;
  }
  const attested = new Set((predicate.materials ?? []).map((material) => `${material.uri} sha256:${material.digest?.['sha256'] ?? ''}`));
  const missing = materials.find((material) => !attested.has(`${material.ref} ${material.digest}`));
  return missing === undefined ? undefined : `it does not list the input ${missing.ref}@${missing.digest} that the image's provenance records`;
}

/**
 * `restack verify`: the checks of `cosign verify --key` and `cosign verify-attestation --key
 * --type slsaprovenance`, then that each attested provenance agrees with what the image itself
 * records (its recipe digest, its inputs). Throws a SigningError on any failure.
 */
export async function verifyImage(opened: OpenedReference, publicKey: KeyObject): Promise<ImageVerification> {
  const target = attachTarget(opened);
  const descriptor = await opened.store.resolve(opened.repository, opened.reference);
  const verified = await verifyAttachments(target, descriptor.digest, publicKey, slsaProvenanceType);
  const images = (await readStoredImage({ ...opened, reference: descriptor.digest })).platforms.map((platform) => platform.image);
  const recipe = recipeOf(images);
  const materials = materialsOf(images, opened.display);
  const provenance = verified.statements.map((statement) => statement.predicate as SlsaPredicate);
  for (const predicate of provenance) {
    const why = mismatch(predicate, recipe, materials);
    if (why !== undefined) {
      throw new SigningError('ATTESTATION_INVALID', `${opened.display}@${descriptor.digest}: the provenance attested by the key does not describe the image: ${why}`, 'the attestation was made for other content; re-attest the image (restack swap/update --sign-key) and find out who attested it');
    }
  }
  return { ref: opened.display, digest: descriptor.digest, signatures: verified.signatures, provenance, rejected: verified.rejected };
}
