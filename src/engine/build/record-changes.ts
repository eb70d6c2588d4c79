import type { OwnLayer } from '../../swap/compose.ts';
import { recordLayerChanges, withoutLayerChanges } from '../../swap/layer-record.ts';
import type { OpenedReference } from '../images.ts';
import type { LayerChangesCache } from '../layer-changes.ts';

/**
 * The layer's own blob layers as its image describes them: each with its changed paths recorded
 * and signed under `key` (swap/layer-record.ts), so that a swap of the image checks overlaps
 * without reading them. The paths are listed from the blob in `layout`, exactly as a swap would
 * list it, never taken from a cache entry (the registry cache is shared and not trusted). Without
 * a key, or for a layer that cannot be listed here, the layer carries no record.
 */
export async function recordOwnChanges(own: readonly OwnLayer[], layout: OpenedReference, layerChanges: LayerChangesCache, key: Uint8Array | undefined): Promise<OwnLayer[]> {
  return Promise.all(
    own.map(async (layer) => {
      const descriptor = withoutLayerChanges(layer.descriptor);
      if (key === undefined) return { ...layer, descriptor };
      const changes = await layerChanges.get(layout.store, layout.repository, descriptor);
      return { ...layer, descriptor: 'entries' in changes ? recordLayerChanges(descriptor, changes.entries, key) : descriptor };
    }),
  );
}
