import { sha256Digest } from '../oci/digest.ts';
import { OciError } from '../oci/errors.ts';
import { MediaType } from '../oci/mediatypes.ts';
import { formatReference, parseReference, repositoryKey, withDigest, type ImageReference } from '../oci/reference.ts';
import type { Descriptor, ImageIndex } from '../oci/types.ts';
import type { SigningOutcome } from '../sign/attach.ts';
import { serializeImage, readProvenance } from '../swap/image.ts';
import type { Provenance } from '../swap/provenance.ts';
import { analyseOverlap, type SafetyReport } from '../swap/safety.ts';
import { findApplied, isRefusal, planSwap, type SwapPlan } from '../swap/swap.ts';
import { formatPlatform, readStoredImage, samePlatform, type OpenedReference, type PlatformImage, type StoredImage } from './images.ts';
import type { LayerChangesCache } from './layer-changes.ts';
import { signImage, type ImageSigning } from './signing.ts';
import { moveTags, noTransfers, transferBlob, writeImage, type TransferCounts } from './publish.ts';

export interface SwapRequest {
  /** The image to update, e.g. docker://host/A:latest. Its tag moves last. */
  target: OpenedReference;
  /** The dependency at its new version, e.g. docker://host/python3:latest. */
  dependency: OpenedReference;
  /** The dependency as already read, when one version is swapped into many images (a fan-out). */
  dependencyImage?: StoredImage;
  /** More tags of the target's repository to point at the result. */
  extraTags?: string[];
  dryRun?: boolean;
  allowOverlap?: boolean;
  layerChanges: LayerChangesCache;
  /** Sign and attest the swapped image before its tags move (docs/signing.md). */
  signing?: ImageSigning;
  onProgress?: (message: string) => void;
}

export type SwapStatus = 'swapped' | 'up-to-date' | 'refused' | 'planned';

export interface PlatformSwap {
  platform: string;
  before: string;
  after: string;
  dependencyBefore: string;
  dependencyAfter: string;
  oldSlice: string[];
  newSlice: string[];
  safety: SafetyReport;
}

export interface SwapOutcome {
  status: SwapStatus;
  target: string;
  dependency: string;
  before: string;
  after: string;
  platforms: PlatformSwap[];
  /** Why a swap was refused: the decision is then a rebuild. */
  refusal?: { reason: 'NoProvenance' | 'BaseChanged' | 'Inconsistent' | 'Overlap' | 'PlatformMissing'; message: string };
  transfers: TransferCounts;
  tagsMoved: string[];
  /** Whether the signature and attestation were written or already there, when signing. */
  signing?: SigningOutcome;
}

/** The repository path of a reference without its registry host, for matching through mirrors. */
function repositoryPath(ref: ImageReference): string {
  return ref.transport === 'oci' ? repositoryKey(ref) : ref.repository;
}

function parsedOrUndefined(ref: string): ImageReference | undefined {
  try {
    return parseReference(ref);
  } catch {
    return undefined;
  }
}

/**
 * Which applied entry the dependency names: the same registry and repository, or else, when
 * exactly one entry has the same repository path, that one (the dependency was reached through
 * a mirror, a proxy, or another name of the same host).
 */
function appliedEntryMatcher(provenance: Provenance, dependency: OpenedReference): (ref: string) => boolean {
  const exact = (ref: string) => {
    const parsed = parsedOrUndefined(ref);
    return parsed !== undefined && repositoryKey(parsed) === repositoryKey(dependency.ref);
  };
  if (provenance.applied.some((entry) => exact(entry.ref))) return exact;
  const samePath = (ref: string) => {
    const parsed = parsedOrUndefined(ref);
    return parsed !== undefined && repositoryPath(parsed) === repositoryPath(dependency.ref);
  };
  return provenance.applied.filter((entry) => samePath(entry.ref)).length === 1 ? samePath : exact;
}

/**
 * Swaps one applied dependency inside an image for its current version: plans every platform,
 * checks the dependency's base and the overlap with the layers above, then writes blobs (mounted,
 * never re-uploaded when the registry allows), configs and manifests by digest, and moves the
 * tags last, so an interrupted swap leaves the tags on the old, complete image and a repeat
 * produces the same digest.
 */
export async function swapDependency(request: SwapRequest): Promise<SwapOutcome> {
  const { target, dependency } = request;
  const progress = request.onProgress ?? (() => {});
  const started = new Date();
  const stored = await readStoredImage(target);
  const outcome: SwapOutcome = {
    status: 'planned',
    target: target.display,
    dependency: dependency.display,
    before: stored.top.descriptor.digest,
    after: stored.top.descriptor.digest,
    platforms: [],
    transfers: noTransfers(),
    tagsMoved: [],
  };
  const firstProvenance = stored.platforms.map((p) => readProvenance(p.image, target.display)).find((p) => p !== undefined);
  if (firstProvenance === undefined) {
    return refuse(outcome, 'NoProvenance', `${target.display} has no restack provenance, so the layers each dependency contributed are unknown; rebuild it with restack`);
  }
  const matches = appliedEntryMatcher(firstProvenance, dependency);
  if (findApplied(firstProvenance, matches) < 0) {
    const applied = firstProvenance.applied.map((entry) => entry.ref).join(', ') || 'nothing';
    throw new OciError('MANIFEST_UNKNOWN', `${target.display} does not apply ${dependency.display} (it applies: ${applied})`, 'name the dependency by the repository the recipe applied');
  }

  progress(`resolving ${dependency.display}`);
  const dependencyImage = request.dependencyImage ?? (await readStoredImage(dependency));
  const plans: { platform: PlatformImage; plan: SwapPlan }[] = [];
  for (const platform of stored.platforms) {
    const provenance = readProvenance(platform.image, target.display);
    const index = provenance === undefined ? -1 : findApplied(provenance, matches);
    const entry = provenance?.applied[index];
    const replacement = dependencyImage.platforms.find((candidate) => samePlatform(candidate.platform, platform.platform));
    if (entry === undefined) return refuse(outcome, 'Inconsistent', `${target.display} (${formatPlatform(platform.platform)}) does not record ${dependency.display}`);
    if (replacement === undefined) {
      return refuse(outcome, 'PlatformMissing', `${dependency.display} has no ${formatPlatform(platform.platform)} image, which ${target.display} needs; rebuild`);
    }
    if (replacement.image.digest === entry.digest) continue;
    const plan = planSwap({
      image: platform.image,
      source: `${target.display} (${formatPlatform(platform.platform)})`,
      appliedIndex: index,
      replacement: { ref: entry.ref, image: replacement.image },
    });
    if (isRefusal(plan)) return refuse(outcome, plan.reason, plan.message);
    plans.push({ platform, plan });
  }
  if (plans.length === 0) {
    outcome.status = 'up-to-date';
    if (request.dryRun !== true) await retag(request, stored.top.descriptor, outcome);
    return outcome;
  }

  for (const { platform, plan } of plans) {
    progress(`checking overlap for ${formatPlatform(platform.platform)}`);
    const safety = await overlapReport(request, plan);
    const serialized = serializeImage(plan);
    outcome.platforms.push({
      platform: formatPlatform(platform.platform),
      before: platform.image.digest,
      after: serialized.manifestDescriptor.digest,
      dependencyBefore: plan.entryBefore.digest,
      dependencyAfter: plan.entryAfter.digest,
      oldSlice: plan.oldSlice.map((layer) => layer.digest),
      newSlice: plan.newSlice.map((layer) => layer.digest),
      safety,
    });
    if (safety.overlaps.length > 0 && request.allowOverlap !== true) {
      const paths = safety.overlaps.map((overlap) => overlap.path);
      const shown = paths.slice(0, 10).join(', ') + (paths.length > 10 ? ` and ${paths.length - 10} more` : '');
      return refuse(outcome, 'Overlap', `${dependency.display} changes ${shown}, which ${target.display}'s layers above it also changed; rebuild (or pass --allow-overlap)`);
    }
  }

  const newTop = topAfterSwap(stored, plans);
  outcome.after = newTop.descriptor.digest;
  if (request.dryRun === true) return outcome;

  for (const { plan } of plans) await writeSwappedImage(request, plan, outcome);
  if (newTop.bytes !== undefined) {
    progress(`writing index ${newTop.descriptor.digest}`);
    await target.store.putManifest(target.repository, newTop.bytes, newTop.descriptor.mediaType);
  }
  if (request.signing !== undefined) {
    const images = stored.platforms.map((platform) => plans.find((entry) => entry.platform === platform)?.plan ?? platform.image);
    const changes = outcome.platforms.map((p) => ({ dependency: dependency.display, from: p.dependencyBefore, to: p.dependencyAfter, platform: p.platform }));
    outcome.signing = await signImage(request.signing, target, newTop.descriptor, images, started, { before: outcome.before, changes });
  }
  await retag(request, newTop.descriptor, outcome);
  outcome.status = 'swapped';
  return outcome;
}

function refuse(outcome: SwapOutcome, reason: NonNullable<SwapOutcome['refusal']>['reason'], message: string): SwapOutcome {
  return { ...outcome, status: 'refused', refusal: { reason, message } };
}

async function overlapReport(request: SwapRequest, plan: SwapPlan): Promise<SafetyReport> {
  const { target, dependency, layerChanges } = request;
  const [oldSlice, newSlice, above] = await Promise.all([
    Promise.all(plan.oldSlice.map((layer) => layerChanges.get(target.store, target.repository, layer))),
    Promise.all(plan.newSlice.map((layer) => layerChanges.get(dependency.store, dependency.repository, layer))),
    Promise.all(plan.above.map((layer) => layerChanges.get(target.store, target.repository, layer))),
  ]);
  return analyseOverlap([...oldSlice, ...newSlice], above);
}

/** The descriptor (and bytes, for an index) of what the target tag will point at. */
function topAfterSwap(stored: StoredImage, plans: { platform: PlatformImage; plan: SwapPlan }[]): { descriptor: Descriptor; bytes?: Uint8Array } {
  if (stored.index === undefined) {
    const only = plans[0];
    if (only === undefined) return { descriptor: stored.top.descriptor };
    return { descriptor: serializeImage(only.plan).manifestDescriptor };
  }
  const replaced = new Map(plans.map(({ platform, plan }) => [platform.descriptor.digest, serializeImage(plan).manifestDescriptor]));
  const index: ImageIndex = {
    ...stored.index,
    manifests: stored.index.manifests.map((child) => {
      const next = replaced.get(child.digest);
      return next === undefined ? child : { ...child, mediaType: next.mediaType, digest: next.digest, size: next.size };
    }),
  };
  const bytes = new TextEncoder().encode(JSON.stringify(index));
  const mediaType = stored.index.mediaType ?? MediaType.ociIndex;
  return { descriptor: { mediaType, digest: sha256Digest(bytes), size: bytes.length }, bytes };
}

async function writeSwappedImage(request: SwapRequest, plan: SwapPlan, outcome: SwapOutcome): Promise<void> {
  const progress = request.onProgress ?? (() => {});
  for (const layer of plan.newSlice) {
    const transfer = await transferBlob(request.target, request.dependency, layer);
    outcome.transfers[transfer]++;
    progress(`layer ${layer.digest.slice(7, 19)}: ${transfer}`);
  }
  const serialized = serializeImage(plan);
  await writeImage(request.target, serialized);
  progress(`wrote manifest ${serialized.manifestDescriptor.digest}`);
}

async function retag(request: SwapRequest, descriptor: Descriptor, outcome: SwapOutcome): Promise<void> {
  const tags = await moveTags(request.target, descriptor, request.extraTags);
  outcome.tagsMoved.push(...tags.map((tag) => formatReference(withDigest({ ...request.target.ref, tag }, descriptor.digest))));
}
