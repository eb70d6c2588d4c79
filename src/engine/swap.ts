import { sha256Digest } from '../oci/digest.ts';
import { OciError } from '../oci/errors.ts';
import { MediaType } from '../oci/mediatypes.ts';
import { formatReference, imageName, parseReference, repositoryKey, withDigest, type ImageReference } from '../oci/reference.ts';
import type { Descriptor, ImageIndex } from '../oci/types.ts';
import type { SigningOutcome } from '../sign/attach.ts';
import { serializeImage, readProvenance, type SerializedImage } from '../swap/image.ts';
import type { Provenance } from '../swap/provenance.ts';
import { analyseOverlap, type SafetyReport } from '../swap/safety.ts';
import type { NamedImage } from '../swap/compose.ts';
import { checkApplied, findApplied, isRefusal, planSwap, type SwapPlan } from '../swap/swap.ts';
import { formatPlatform, readStoredImage, samePlatform, type OpenedReference, type PlatformImage, type StoredImage } from './images.ts';
import type { LayerChangesCache } from './layer-changes.ts';
import { signImage, type ImageSigning } from './signing.ts';
import { moveTags, noTransfers, transferBlob, type TransferCounts } from './publish.ts';

export interface SwapRequest {
  /** The image to update, e.g. docker://host/A:latest. Its tag moves last. */
  target: OpenedReference;
  /**
   * The dependency at its new version, e.g. docker://host/python3:latest (or pinned, with
   * @digest). The caller's trusted name for it, from the recipe or the operator's own status,
   * never from the image: the image's provenance must record exactly this name (tag included),
   * and the version it records is read from this repository and checked against the image.
   */
  dependency: OpenedReference;
  /** Reads the dependency's images (new and recorded versions); a cache when one version is swapped into many images. */
  readDependency?: (opened: OpenedReference) => Promise<StoredImage>;
  /** More tags of the target's repository to point at the result. */
  extraTags?: string[];
  dryRun?: boolean;
  allowOverlap?: boolean;
  layerChanges: LayerChangesCache;
  /** The key the target's and dependency's builds signed their layers' change records with: layers whose record verifies are not read. */
  layerRecordKey?: Uint8Array;
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
  refusal?: { reason: 'NoProvenance' | 'BaseChanged' | 'Inconsistent' | 'FormatMismatch' | 'Overlap' | 'NotAnalysed' | 'PlatformMissing'; message: string };
  transfers: TransferCounts;
  tagsMoved: string[];
  /** Whether the signature and attestation were written or already there, when signing. */
  signing?: SigningOutcome;
}

function parsedOrUndefined(ref: string): ImageReference | undefined {
  try {
    return parseReference(ref);
  } catch {
    return undefined;
  }
}

/** The image name without its registry host, for matching through mirrors and proxies. */
function pathName(ref: ImageReference): string {
  return ref.transport === 'oci' ? imageName(ref) : `${ref.repository}:${ref.tag ?? ''}`;
}

/**
 * Which applied entry the dependency names: the same image name (registry, repository and tag;
 * two tags of one repository are two inputs), or else, when exactly one entry has the same
 * repository and tag, that one (the dependency was reached through a mirror, a proxy, or another
 * name of the same host). A dependency named by digest alone matches the one entry of its
 * repository. Matching only picks the entry: what it records is then checked against the
 * dependency's own repository, never followed.
 */
function appliedEntryMatcher(provenance: Provenance, dependency: OpenedReference): (ref: string) => boolean {
  const matching = (key: (ref: ImageReference) => string) => (ref: string) => {
    const parsed = parsedOrUndefined(ref);
    return parsed !== undefined && key(parsed) === key(dependency.ref);
  };
  const unique = (matches: (ref: string) => boolean) => provenance.applied.filter((entry) => matches(entry.ref)).length === 1;
  if (dependency.ref.tag === undefined) {
    const sameRepository = matching(repositoryKey);
    return unique(sameRepository) ? sameRepository : () => false;
  }
  const exact = matching(imageName);
  if (provenance.applied.some((entry) => exact(entry.ref))) return exact;
  const samePath = matching(pathName);
  return unique(samePath) ? samePath : exact;
}

function isMissing(error: unknown): boolean {
  return error instanceof OciError && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN' || error.code === 'BLOB_UNKNOWN');
}

/** The version an image's provenance says it applied, read from the trusted dependency repository; undefined when that repository does not have it. */
async function readRecorded(request: SwapRequest, digest: string, platform: PlatformImage['platform']): Promise<NamedImage | undefined> {
  const ref = withDigest(request.dependency.ref, digest);
  const pinned: OpenedReference = { ...request.dependency, ref, reference: digest, display: formatReference(ref) };
  try {
    const stored = await (request.readDependency ?? readStoredImage)(pinned);
    const image = stored.platforms.find((candidate) => candidate.image.digest === digest || samePlatform(candidate.platform, platform));
    return image === undefined ? undefined : { ref: pinned.display, image: image.image };
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
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
    return refuse(
      outcome,
      'Inconsistent',
      `${target.display}'s provenance does not record ${dependency.display} as applied (it records: ${applied}); rebuild it from its recipe, or name the dependency exactly as the recipe applies it`,
    );
  }

  progress(`resolving ${dependency.display}`);
  const dependencyImage = await (request.readDependency ?? readStoredImage)(dependency);
  const plans: PlannedPlatform[] = [];
  for (const platform of stored.platforms) {
    const source = `${target.display} (${formatPlatform(platform.platform)})`;
    const provenance = readProvenance(platform.image, target.display);
    const index = provenance === undefined ? -1 : findApplied(provenance, matches);
    const entry = provenance?.applied[index];
    const replacement = dependencyImage.platforms.find((candidate) => samePlatform(candidate.platform, platform.platform));
    if (provenance === undefined || entry === undefined) return refuse(outcome, 'Inconsistent', `${source} does not record ${dependency.display}`);
    if (replacement === undefined) {
      return refuse(outcome, 'PlatformMissing', `${dependency.display} has no ${formatPlatform(platform.platform)} image, which ${target.display} needs; rebuild`);
    }
    const current: NamedImage = { ref: dependency.display, image: replacement.image };
    const previous = replacement.image.digest === entry.digest ? current : await readRecorded(request, entry.digest, platform.platform);
    if (previous === undefined) {
      return refuse(outcome, 'Inconsistent', `${source} records ${dependency.display} at ${entry.digest}, which ${dependency.display}'s repository does not have; rebuild`);
    }
    if (previous === current) {
      const checked = checkApplied(platform.image, provenance, index, previous, source);
      if ('reason' in checked) return refuse(outcome, checked.reason, checked.message);
      continue;
    }
    const plan = planSwap({ image: platform.image, source, appliedIndex: index, previous, replacement: { ref: entry.ref, image: replacement.image } });
    if (isRefusal(plan)) return refuse(outcome, plan.reason, plan.message);
    plans.push({ platform, plan, serialized: serializeImage(plan) });
  }
  if (plans.length === 0) {
    outcome.status = 'up-to-date';
    if (request.dryRun !== true) await retag(request, stored.top.descriptor, outcome);
    return outcome;
  }

  for (const { platform, plan, serialized } of plans) {
    progress(`checking overlap for ${formatPlatform(platform.platform)}`);
    const safety = await overlapReport(request, plan);
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
    if (safety.unavailable.length > 0 && request.allowOverlap !== true) {
      const unread = safety.unavailable.map((layer) => `${layer.digest.slice(0, 19)}: ${layer.reason}`).join('; ');
      return refuse(outcome, 'NotAnalysed', `the overlap check could not read every layer of ${target.display} and ${dependency.display} (${unread}); rebuild (or pass --allow-overlap)`);
    }
  }

  const newTop = topAfterSwap(stored, plans);
  outcome.after = newTop.descriptor.digest;
  if (request.dryRun === true) return outcome;

  const present = new Set(stored.platforms.flatMap((platform) => platform.image.manifest.layers.map((layer) => layer.digest)));
  for (const planned of plans) await writeSwappedBlobs(request, planned, present, outcome);
  // An index's children are written by digest before the index; the top manifest (the index, or
  // the one image) goes in last, by tag where there is one.
  if (stored.index !== undefined) {
    for (const { serialized } of plans) {
      await target.store.putManifest(target.repository, serialized.manifestBytes, serialized.manifestDescriptor.mediaType);
    }
  }
  if (request.signing !== undefined) {
    const images = stored.platforms.map((platform) => plans.find((entry) => entry.platform === platform)?.plan ?? platform.image);
    const changes = outcome.platforms.map((p) => ({ dependency: dependency.display, from: p.dependencyBefore, to: p.dependencyAfter, platform: p.platform }));
    outcome.signing = await signImage(request.signing, target, newTop.descriptor, images, started, { before: outcome.before, changes });
  }
  progress(`writing ${newTop.descriptor.digest}`);
  await retag(request, newTop.descriptor, outcome, newTop.bytes);
  outcome.status = 'swapped';
  return outcome;
}

/** One platform's swap, planned and serialised once. */
interface PlannedPlatform {
  platform: PlatformImage;
  plan: SwapPlan;
  serialized: SerializedImage;
}

function refuse(outcome: SwapOutcome, reason: NonNullable<SwapOutcome['refusal']>['reason'], message: string): SwapOutcome {
  return { ...outcome, status: 'refused', refusal: { reason, message } };
}

async function overlapReport(request: SwapRequest, plan: SwapPlan): Promise<SafetyReport> {
  const { target, dependency, layerChanges, layerRecordKey: key } = request;
  const [oldSlice, newSlice, above] = await Promise.all([
    Promise.all(plan.oldSlice.map((layer) => layerChanges.get(target.store, target.repository, layer, key))),
    Promise.all(plan.newSlice.map((layer) => layerChanges.get(dependency.store, dependency.repository, layer, key))),
    Promise.all(plan.above.map((layer) => layerChanges.get(target.store, target.repository, layer, key))),
  ]);
  return analyseOverlap([...oldSlice, ...newSlice], above);
}

/**
 * An attestation (BuildKit's SBOM and provenance manifests) of a platform image the swap
 * replaced: it describes the old layers, so the swapped index leaves it out rather than attach it
 * to an image it does not describe.
 */
function attestsReplaced(child: Descriptor, replaced: ReadonlyMap<string, Descriptor>): boolean {
  const annotations = child.annotations ?? {};
  const subject = annotations['vnd.docker.reference.digest'];
  return annotations['vnd.docker.reference.type'] === 'attestation-manifest' && subject !== undefined && replaced.has(subject);
}

/** The descriptor and bytes of what the target tag will point at (the stored top when nothing changes). */
function topAfterSwap(stored: StoredImage, plans: PlannedPlatform[]): { descriptor: Descriptor; bytes?: Uint8Array } {
  if (stored.index === undefined) {
    const only = plans[0];
    if (only === undefined) return { descriptor: stored.top.descriptor };
    return { descriptor: only.serialized.manifestDescriptor, bytes: only.serialized.manifestBytes };
  }
  const replaced = new Map(plans.map(({ platform, serialized }) => [platform.descriptor.digest, serialized.manifestDescriptor]));
  const index: ImageIndex = {
    ...stored.index,
    manifests: stored.index.manifests.filter((child) => !attestsReplaced(child, replaced)).map((child) => {
      const next = replaced.get(child.digest);
      return next === undefined ? child : { ...child, mediaType: next.mediaType, digest: next.digest, size: next.size };
    }),
  };
  const bytes = new TextEncoder().encode(JSON.stringify(index));
  const mediaType = stored.index.mediaType ?? MediaType.ociIndex;
  return { descriptor: { mediaType, digest: sha256Digest(bytes), size: bytes.length }, bytes };
}

/**
 * The new slice's layers (mounted from the dependency's repository, unless the image already has
 * them, which makes them present in its repository) and the new config.
 */
async function writeSwappedBlobs(request: SwapRequest, { plan, serialized }: PlannedPlatform, present: ReadonlySet<string>, outcome: SwapOutcome): Promise<void> {
  const progress = request.onProgress ?? (() => {});
  for (const layer of plan.newSlice) {
    const transfer = present.has(layer.digest) ? 'present' : await transferBlob(request.target, request.dependency, layer);
    outcome.transfers[transfer]++;
    progress(`layer ${layer.digest.slice(7, 19)}: ${transfer}`);
  }
  await request.target.store.putBlob(request.target.repository, serialized.configDescriptor, serialized.configBytes);
}

async function retag(request: SwapRequest, descriptor: Descriptor, outcome: SwapOutcome, bytes?: Uint8Array): Promise<void> {
  const tags = await moveTags(request.target, descriptor, request.extraTags, bytes);
  outcome.tagsMoved.push(...tags.map((tag) => formatReference(withDigest({ ...request.target.ref, tag }, descriptor.digest))));
}
