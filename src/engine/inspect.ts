import type { Descriptor } from '../oci/types.ts';
import { readProvenance } from '../swap/image.ts';
import { layerOrigins, type LayerOrigin, type Provenance } from '../swap/provenance.ts';
import { formatPlatform, readStoredImage, type OpenedReference } from './images.ts';

export interface InspectedLayer {
  index: number;
  digest: string;
  size: number;
  mediaType: string;
  origin: LayerOrigin;
}

export interface InspectedPlatform {
  platform: string;
  digest: string;
  mediaType: string;
  config: {
    digest: string;
    created?: string;
    user?: string;
    workingDir?: string;
    entrypoint?: string[] | null;
    cmd?: string[] | null;
    env: string[];
    labels: Record<string, string>;
  };
  layers: InspectedLayer[];
  annotations: Record<string, string>;
  provenance: Provenance | null;
}

export interface InspectedImage {
  ref: string;
  digest: string;
  mediaType: string;
  platforms: InspectedPlatform[];
}

/** What an image is made of, layer by layer, with each layer's origin from its provenance. */
export async function inspectImage(opened: OpenedReference): Promise<InspectedImage> {
  const stored = await readStoredImage(opened);
  return {
    ref: opened.display,
    digest: stored.top.descriptor.digest,
    mediaType: stored.top.descriptor.mediaType,
    platforms: stored.platforms.map(({ platform, descriptor, image }) => {
      const provenance = readProvenance(image, opened.display);
      const origins = layerOrigins(provenance, image.manifest.layers.length);
      const inner = image.config.config ?? {};
      return {
        platform: formatPlatform(platform),
        digest: descriptor.digest,
        mediaType: image.manifest.mediaType ?? descriptor.mediaType,
        config: {
          digest: image.manifest.config.digest,
          ...(image.config.created === undefined ? {} : { created: image.config.created }),
          ...(inner.User === undefined ? {} : { user: inner.User }),
          ...(inner.WorkingDir === undefined ? {} : { workingDir: inner.WorkingDir }),
          ...(inner.Entrypoint === undefined ? {} : { entrypoint: inner.Entrypoint }),
          ...(inner.Cmd === undefined ? {} : { cmd: inner.Cmd }),
          env: inner.Env ?? [],
          labels: inner.Labels ?? {},
        },
        layers: image.manifest.layers.map((layer: Descriptor, index) => ({
          index,
          digest: layer.digest,
          size: layer.size,
          mediaType: layer.mediaType,
          origin: origins[index] ?? { kind: 'unknown' },
        })),
        annotations: image.manifest.annotations ?? {},
        provenance: provenance ?? null,
      };
    }),
  };
}
