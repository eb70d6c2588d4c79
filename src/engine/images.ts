import { OciError } from '../oci/errors.ts';
import { MediaType } from '../oci/mediatypes.ts';
import { readConfig } from '../oci/open.ts';
import type { ImageReference } from '../oci/reference.ts';
import type { Store } from '../oci/store.ts';
import { isIndex, type Descriptor, type FetchedManifest, type ImageIndex, type ImageManifest, type Platform } from '../oci/types.ts';
import type { ImageParts } from '../swap/image.ts';

/** A reference opened on its store: where to read and write it. */
export interface OpenedReference {
  ref: ImageReference;
  store: Store;
  repository: string;
  /** The tag or digest the reference names. */
  reference: string;
  /** For messages: the reference as the user wrote it. */
  display: string;
}

export type StoreOpener = (ref: ImageReference) => OpenedReference;

/** One platform of an image, read and verified. */
export interface PlatformImage {
  platform: Platform;
  descriptor: Descriptor;
  image: ImageParts & { digest: string };
}

/** An image as stored: a single manifest, or an index with one image per platform. */
export interface StoredImage {
  top: FetchedManifest;
  index: ImageIndex | undefined;
  platforms: PlatformImage[];
}

export async function readImageParts(opened: OpenedReference, descriptor: Descriptor, manifest: ImageManifest): Promise<PlatformImage> {
  const { config } = await readConfig(opened.store, opened.repository, manifest, opened.display);
  const platform: Platform = descriptor.platform ?? {
    architecture: config.architecture,
    os: config.os,
    ...(config.variant === undefined ? {} : { variant: config.variant }),
  };
  return { platform, descriptor, image: { manifest, config, digest: descriptor.digest } };
}

const imageConfigTypes = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);

/** Attestations and other non-images in an index carry the platform unknown/unknown. */
function isImagePlatform(descriptor: Descriptor): boolean {
  return descriptor.platform?.os !== 'unknown' && descriptor.platform?.architecture !== 'unknown';
}

/** Reads an image and every platform it has. */
export async function readStoredImage(opened: OpenedReference): Promise<StoredImage> {
  const top = await opened.store.getManifest(opened.repository, opened.reference);
  if (!isIndex(top.manifest)) {
    return { top, index: undefined, platforms: [await readImageParts(opened, top.descriptor, top.manifest)] };
  }
  const index = top.manifest;
  const platforms: PlatformImage[] = [];
  for (const child of index.manifests.filter(isImagePlatform)) {
    const fetched = await opened.store.getManifest(opened.repository, child.digest);
    if (isIndex(fetched.manifest)) {
      throw new OciError('MANIFEST_UNSUPPORTED', `${opened.display}: nested index ${child.digest} is not supported`);
    }
    // an artifact (an SBOM, a signature) listed without a platform has no image config to read
    if (!imageConfigTypes.has(fetched.manifest.config.mediaType)) continue;
    platforms.push(await readImageParts(opened, child, fetched.manifest));
  }
  return { top, index, platforms };
}

export function samePlatform(a: Platform, b: Platform): boolean {
  return a.os === b.os && a.architecture === b.architecture && (a.variant ?? '') === (b.variant ?? '');
}

export function formatPlatform(platform: Platform): string {
  return `${platform.os}/${platform.architecture}${platform.variant === undefined ? '' : `/${platform.variant}`}`;
}
