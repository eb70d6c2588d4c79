import type { LayerSource } from '../../build/storage/driver.ts';
import type { ImageConfig, ImageManifest } from '../../oci/types.ts';
import type { Provenance } from '../../swap/provenance.ts';
import type { OpenedReference } from '../images.ts';

/**
 * For each blob layer of a composed image, the store it is read from: the base's, the applied
 * image's that contributed it, or (for the image's own layers) the output layout.
 */
export function layerOrigins(provenance: Provenance, base: OpenedReference | null, applied: readonly OpenedReference[], own: OpenedReference): OpenedReference[] {
  const origins: OpenedReference[] = [];
  const fill = (range: { start: number; count: number }, origin: OpenedReference) => {
    for (let index = range.start; index < range.start + range.count; index++) origins[index] = origin;
  };
  if (provenance.base !== null && base !== null) fill(provenance.base.layers, base);
  provenance.applied.forEach((entry, index) => fill(entry.layers, applied[index] as OpenedReference));
  fill(provenance.own.layers, own);
  return origins;
}

/** The image's layers as the storage driver takes them: identified by diff_id, opened from their store on demand. */
export function layerSources(image: { manifest: ImageManifest; config: ImageConfig }, origins: readonly OpenedReference[]): LayerSource[] {
  return image.manifest.layers.map((layer, index) => {
    const origin = origins[index] as OpenedReference;
    return {
      diffId: image.config.rootfs.diff_ids[index] as string,
      digest: layer.digest,
      mediaType: layer.mediaType,
      open: () => origin.store.openBlob(origin.repository, layer),
    };
  });
}
