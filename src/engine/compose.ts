import { OciError } from '../oci/errors.ts';
import type { Platform } from '../oci/types.ts';
import { composeImage, type NamedImage, type OwnLayer } from '../swap/compose.ts';
import { serializeImage } from '../swap/image.ts';
import type { Provenance } from '../swap/provenance.ts';
import { formatPlatform, readStoredImage, samePlatform, type OpenedReference, type PlatformImage } from './images.ts';
import { moveTags, noTransfers, transferBlob, writeImage, type TransferCounts } from './publish.ts';

export interface ComposeRequest {
  /** The `from:` image; null for scratch (then `platform` is required). */
  base: OpenedReference | null;
  applied: readonly OpenedReference[];
  target: OpenedReference;
  /** Layers of the image's own, already present in the target repository. */
  own?: readonly OwnLayer[];
  platform?: Platform;
  extraTags?: readonly string[];
  onProgress?: (message: string) => void;
}

export interface ComposeOutcome {
  digest: string;
  provenance: Provenance;
  transfers: TransferCounts;
  tags: string[];
}

export const defaultPlatform: Platform = { os: 'linux', architecture: 'amd64' };

/** The image of `opened` for a platform: the only one, or the one matching. */
export async function readPlatformImage(opened: OpenedReference, platform: Platform | undefined): Promise<PlatformImage> {
  const stored = await readStoredImage(opened);
  if (stored.index === undefined && platform === undefined) {
    const [only] = stored.platforms;
    if (only !== undefined) return only;
  }
  const wanted = platform ?? defaultPlatform;
  const match = stored.platforms.find((candidate) => samePlatform(candidate.platform, wanted));
  if (match === undefined) {
    const available = stored.platforms.map((candidate) => formatPlatform(candidate.platform)).join(', ') || 'none';
    throw new OciError('MANIFEST_UNKNOWN', `${opened.display} has no ${formatPlatform(wanted)} image (it has: ${available})`, 'choose a platform the image provides');
  }
  return match;
}

const named = (opened: OpenedReference, image: PlatformImage): NamedImage => ({ ref: opened.display, image: image.image });

/**
 * Writes base + applied images' own layers (+ own layers) as one image: blobs mounted from where
 * they are, then config and manifest by digest, then the tags.
 */
export async function composeToStore(request: ComposeRequest): Promise<ComposeOutcome> {
  const progress = request.onProgress ?? (() => {});
  const base = request.base === null ? null : await readPlatformImage(request.base, request.platform);
  const platform = request.platform ?? base?.platform;
  const applied = await Promise.all(request.applied.map((opened) => readPlatformImage(opened, platform)));
  const composed = composeImage({
    base: request.base === null || base === null ? null : named(request.base, base),
    applied: request.applied.map((opened, index) => named(opened, applied[index] as PlatformImage)),
    ...(request.own === undefined ? {} : { own: request.own }),
    ...(platform === undefined ? {} : { platform }),
  });
  const transfers = noTransfers();
  const layers = composed.manifest.layers;
  const sources: { from: OpenedReference; start: number; count: number }[] = [
    ...(request.base === null || composed.provenance.base === null ? [] : [{ from: request.base, ...composed.provenance.base.layers }]),
    ...composed.provenance.applied.map((entry, index) => ({ from: request.applied[index] as OpenedReference, ...entry.layers })),
  ];
  for (const { from, start, count } of sources) {
    for (const layer of layers.slice(start, start + count)) {
      const transfer = await transferBlob(request.target, from, layer);
      transfers[transfer]++;
      progress(`${layer.digest.slice(7, 19)} from ${from.display}: ${transfer}`);
    }
  }
  const serialized = serializeImage(composed);
  await writeImage(request.target, serialized);
  const tags = await moveTags(request.target, serialized.manifestDescriptor, request.extraTags);
  return { digest: serialized.manifestDescriptor.digest, provenance: composed.provenance, transfers, tags };
}
