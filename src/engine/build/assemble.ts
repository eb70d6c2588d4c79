import { composeImage, type ComposedImage, type OwnLayer } from '../../swap/compose.ts';
import { serializeImage } from '../../swap/image.ts';
import type { Provenance } from '../../swap/provenance.ts';
import type { OpenedReference } from '../images.ts';
import { moveTags, transferBlob, writeImage } from '../publish.ts';
import { configureImage, type ImageSettings } from './image-config.ts';
import type { LayerInputs } from './inputs.ts';
import { layerOrigins } from './layer-origins.ts';

/** Base + applied slices + own layers, with provenance; always OCI, whose manifest carries the annotations. */
export function composeLayerImage(inputs: LayerInputs, own: readonly OwnLayer[]): ComposedImage {
  const named = (input: LayerInputs['applied'][number]) => ({ ref: input.ref, image: input.image.image });
  return composeImage({
    base: inputs.base === null ? null : named(inputs.base),
    applied: inputs.applied.map(named),
    own,
    platform: inputs.platform,
    format: 'oci',
  });
}

/**
 * Writes a built layer's image into the output layout: base and applied blobs brought over from
 * their stores (own blobs are there already), then config and manifest by digest, the tag last.
 */
export async function writeLayerImage(target: OpenedReference, inputs: LayerInputs, own: readonly OwnLayer[], settings: ImageSettings): Promise<{ digest: string; provenance: Provenance }> {
  const composed = composeLayerImage(inputs, own);
  const serialized = serializeImage(configureImage(composed, settings));
  const origins = layerOrigins(composed.provenance, inputs.base?.opened ?? null, inputs.applied.map((input) => input.opened), target);
  for (const [index, layer] of serialized.manifest.layers.entries()) {
    const origin = origins[index] as OpenedReference;
    if (origin !== target) await transferBlob(target, origin, layer);
  }
  await writeImage(target, serialized);
  await moveTags(target, serialized.manifestDescriptor);
  return { digest: serialized.manifestDescriptor.digest, provenance: composed.provenance };
}
