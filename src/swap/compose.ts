import { MediaType } from '../oci/mediatypes.ts';
import type { Descriptor, HistoryEntry, ImageConfig, ImageManifest, Platform } from '../oci/types.ts';
import { flattenHistory, layerHistory } from './history.ts';
import { convertLayer, dockerCompatible, manifestFormat, readProvenance, writeProvenance, type ImageParts, type ManifestFormat } from './image.ts';
import { layerChain, type AppliedProvenance, type Provenance } from './provenance.ts';

/** An image named by the reference a recipe used for it, read at `image.digest`. */
export interface NamedImage {
  ref: string;
  image: ImageParts & { digest: string };
}

/** A blob layer this image adds itself (its run step or imports), already written. */
export interface OwnLayer {
  descriptor: Descriptor;
  diffId: string;
  history: HistoryEntry;
}

export interface ComposeInput {
  /** The `from:` image; null for scratch. */
  base: NamedImage | null;
  applied: readonly NamedImage[];
  own?: readonly OwnLayer[];
  /** Required for a scratch base; otherwise the base's platform. */
  platform?: Platform;
  /** Defaults to the base's format when every layer fits it, else OCI. */
  format?: ManifestFormat;
}

export interface ComposedImage {
  manifest: ImageManifest;
  config: ImageConfig;
  provenance: Provenance;
}

export class ComposeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ComposeError';
  }
}

/** The slice of an applied image that is its own work: the layers above its base. */
export interface AppliedSlice {
  layers: Descriptor[];
  diffIds: string[];
  history: HistoryEntry[][];
  base: AppliedProvenance['base'];
}

/**
 * Splits an applied image into its base and its own layers. An image restack made says where its
 * base ends; for any other image the base is the longest run of layers it shares with `commonBase`
 * (the layers of the image it is applied onto), which is what a build on the same base yields.
 */
export function appliedSlice(applied: NamedImage, commonBase: readonly Descriptor[], baseCount?: number): AppliedSlice {
  const { manifest, config } = applied.image;
  const layers = manifest.layers;
  const diffIds = config.rootfs.diff_ids;
  if (diffIds.length !== layers.length) {
    throw new ComposeError(`${applied.ref}: config lists ${diffIds.length} diff_ids for ${layers.length} layers; the image is inconsistent`);
  }
  const count = baseCount ?? readProvenance(applied.image, applied.ref)?.base?.layers.count ?? sharedPrefix(layers, commonBase);
  if (count > layers.length) throw new ComposeError(`${applied.ref}: its base has more layers (${count}) than the image (${layers.length})`);
  const history = layerHistory(config, layers.length, (index) => `restack apply ${applied.ref} layer ${index}`);
  return {
    layers: layers.slice(count),
    diffIds: diffIds.slice(count),
    history: history.perLayer.slice(count),
    base: { count, chain: layerChain(layers.slice(0, count).map((layer) => layer.digest)) },
  };
}

function sharedPrefix(layers: readonly Descriptor[], other: readonly Descriptor[]): number {
  let count = 0;
  while (count < layers.length && count < other.length && layers[count]?.digest === other[count]?.digest) count++;
  return count;
}

/**
 * base layers + each applied image's own layers (verbatim, in order) + this image's own layers,
 * with diff_ids and history kept aligned and provenance recording every range.
 */
export function composeImage(input: ComposeInput): ComposedImage {
  const base = input.base?.image;
  const baseLayers = base?.manifest.layers ?? [];
  const baseConfig: ImageConfig = base?.config ?? scratchConfig(input.platform);
  if (base !== undefined && baseConfig.rootfs.diff_ids.length !== baseLayers.length) {
    throw new ComposeError(`${input.base?.ref}: config lists ${baseConfig.rootfs.diff_ids.length} diff_ids for ${baseLayers.length} layers; the image is inconsistent`);
  }
  const baseHistory = layerHistory(baseConfig, baseLayers.length, (index) => `base layer ${index}`);
  const layers: Descriptor[] = [...baseLayers];
  const diffIds: string[] = [...baseConfig.rootfs.diff_ids];
  const groups: HistoryEntry[][] = [...baseHistory.perLayer];
  const applied: AppliedProvenance[] = [];
  for (const named of input.applied) {
    const slice = appliedSlice(named, baseLayers);
    applied.push({ ref: named.ref, digest: named.image.digest, layers: { start: layers.length, count: slice.layers.length }, base: slice.base });
    layers.push(...slice.layers);
    diffIds.push(...slice.diffIds);
    groups.push(...slice.history);
  }
  const ownStart = layers.length;
  for (const own of input.own ?? []) {
    layers.push(own.descriptor);
    diffIds.push(own.diffId);
    groups.push([own.history]);
  }
  const format = input.format ?? (base !== undefined && manifestFormat(base.manifest) === 'docker' && dockerCompatible(layers) ? 'docker' : 'oci');
  if (format === 'docker' && !dockerCompatible(layers)) {
    throw new ComposeError('a Docker schema2 manifest can only hold tar and gzip layers; compose to OCI format instead');
  }
  const provenance: Provenance = {
    version: 1,
    base: input.base === null ? null : { ref: input.base.ref, digest: input.base.image.digest, layers: { start: 0, count: baseLayers.length } },
    applied,
    own: { layers: { start: ownStart, count: layers.length - ownStart } },
  };
  const config: ImageConfig = {
    ...baseConfig,
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: flattenHistory(groups, baseHistory.trailing),
  };
  const manifest = manifestShell(format, layers.map((layer) => convertLayer(layer, format)));
  return { ...writeProvenance(manifest, config, provenance), provenance };
}

function scratchConfig(platform: Platform | undefined): ImageConfig {
  if (platform === undefined) throw new ComposeError('an image from scratch needs a platform (os and architecture)');
  return {
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant === undefined ? {} : { variant: platform.variant }),
    config: {},
    rootfs: { type: 'layers', diff_ids: [] },
    history: [],
  };
}

/**
 * A manifest of the format with the given layers; the config descriptor is filled in on
 * serialisation. The base's annotations describe the base, so none are inherited.
 */
function manifestShell(format: ManifestFormat, layers: Descriptor[]): ImageManifest {
  return {
    schemaVersion: 2,
    mediaType: format === 'docker' ? MediaType.dockerManifest : MediaType.ociManifest,
    config: { mediaType: format === 'docker' ? MediaType.dockerConfig : MediaType.ociConfig, digest: '', size: 0 },
    layers,
  };
}
