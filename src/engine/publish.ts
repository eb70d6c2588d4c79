import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { BlobTransfer } from '../oci/store.ts';
import type { Descriptor } from '../oci/types.ts';
import type { SerializedImage } from '../swap/image.ts';
import type { OpenedReference } from './images.ts';

export type TransferCounts = Record<BlobTransfer, number>;

export const noTransfers = (): TransferCounts => ({ present: 0, mounted: 0, uploaded: 0 });

/**
 * Makes a blob of `source` available in `target`'s repository: a mount within one store (no
 * bytes move), a streamed copy between stores.
 */
export async function transferBlob(target: OpenedReference, source: OpenedReference, blob: Descriptor): Promise<BlobTransfer> {
  // Two opens of one layout directory are different objects over the same blobs.
  if (target.store === source.store || target.store.location === source.store.location) return target.store.mountBlob(target.repository, blob, source.repository);
  return target.store.putBlob(target.repository, blob, openForCopy(source, blob));
}

/** A stream source opened afresh for each attempt the target makes. */
function openForCopy(source: OpenedReference, blob: Descriptor): () => Readable {
  return () => {
    const relay = new PassThrough();
    source.store
      .openBlob(source.repository, blob)
      .then((stream) => pipeline(stream, relay))
      .catch((error: unknown) => relay.destroy(error instanceof Error ? error : new Error(String(error))));
    return relay;
  };
}

/** Writes config then manifest, by digest. Layers must already be present; no tag moves here. */
export async function writeImage(target: OpenedReference, image: SerializedImage): Promise<void> {
  await target.store.putBlob(target.repository, image.configDescriptor, image.configBytes);
  await target.store.putManifest(target.repository, image.manifestBytes, image.manifestDescriptor.mediaType);
}

/**
 * Points the reference's tag, and any extra tags, at a manifest: always the last write. With the
 * manifest's `bytes` (not yet stored; its blobs and children are), the manifest is written by
 * the first tag in one step (by digest when there is no tag), which a registry refuses while
 * anything it names is missing, so the tag never points at an incomplete image.
 */
export async function moveTags(target: OpenedReference, descriptor: Descriptor, extraTags: readonly string[] = [], bytes?: Uint8Array): Promise<string[]> {
  const tags = [...new Set([...(target.ref.tag === undefined ? [] : [target.ref.tag]), ...extraTags])];
  const [first, ...rest] = tags;
  if (bytes !== undefined) await target.store.putManifest(target.repository, bytes, descriptor.mediaType, first);
  for (const tag of bytes === undefined ? tags : rest) await target.store.tag(target.repository, tag, descriptor);
  return tags;
}
