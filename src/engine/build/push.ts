import { isIndex, type Descriptor } from '../../oci/types.ts';
import type { OpenedReference } from '../images.ts';
import { moveTags, transferBlob } from '../publish.ts';

/**
 * Where blobs of this push already are, per registry store: a later image gets them by a
 * cross-repository mount instead of a second upload.
 */
export type PushedBlobs = Map<string, OpenedReference>;

/**
 * Copies one image from the output layout to a registry repository: blobs first (mounted when an
 * earlier image of this push already sent them, else streamed from the layout), then the manifest
 * by digest with its exact bytes, then `beforeTags` (signing), the tags last.
 */
export async function pushImage(
  source: OpenedReference,
  digest: string,
  target: OpenedReference,
  tags: readonly string[],
  pushed: PushedBlobs,
  beforeTags?: (written: Descriptor) => Promise<void>,
): Promise<void> {
  const { manifest, bytes, descriptor } = await source.store.getManifest(source.repository, digest);
  if (isIndex(manifest)) throw new Error(`${source.display}@${digest} is an index; the builder only writes image manifests`);
  for (const blob of [manifest.config, ...manifest.layers]) {
    const key = `${target.store.location} ${blob.digest}`;
    const earlier = pushed.get(key);
    await transferBlob(target, earlier !== undefined && earlier.repository !== target.repository ? earlier : source, blob);
    pushed.set(key, target);
  }
  const written = await target.store.putManifest(target.repository, bytes, descriptor.mediaType);
  await beforeTags?.(written);
  await moveTags(target, written, tags);
}
