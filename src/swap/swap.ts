import type { Descriptor, HistoryEntry, ImageConfig } from '../oci/types.ts';
import { appliedSlice, type NamedImage } from './compose.ts';
import { flattenHistory, layerHistory } from './history.ts';
import { convertLayer, manifestFormat, readProvenance, writeProvenance, type ImageParts } from './image.ts';
import { totalLayers, type AppliedProvenance, type Provenance } from './provenance.ts';

export interface SwapInput {
  /** The image to change, with its provenance; `source` names it in messages. */
  image: ImageParts;
  source: string;
  /** Which applied entry of the provenance to replace. */
  appliedIndex: number;
  /** The new version of that dependency. */
  replacement: NamedImage;
}

export type SwapRefusal =
  | { reason: 'NoProvenance'; message: string }
  | { reason: 'BaseChanged'; message: string }
  | { reason: 'Inconsistent'; message: string };

export interface SwapPlan {
  manifest: ImageParts['manifest'];
  config: ImageConfig;
  provenance: Provenance;
  /** The dependency's layers before and after, in the image's media types. */
  oldSlice: Descriptor[];
  newSlice: Descriptor[];
  /** Layers above the slice, carried over unchanged. */
  above: Descriptor[];
  entryBefore: AppliedProvenance;
  entryAfter: AppliedProvenance;
}

/** Finds the applied entry whose reference names the same repository as `repository`. */
export function findApplied(provenance: Provenance, sameRepository: (ref: string) => boolean): number {
  return provenance.applied.findIndex((entry) => sameRepository(entry.ref));
}

/**
 * Replaces one applied dependency's layers inside an image, keeping every layer above them (and
 * their diff_ids and history) as they were. Refuses, with the reason, when the new version was
 * built on a different base than the one the image applied: its layers may then depend on files
 * the image does not have.
 */
export function planSwap(input: SwapInput): SwapPlan | SwapRefusal {
  const { image, source, appliedIndex, replacement } = input;
  const provenance = readProvenance(image, source);
  if (provenance === undefined) {
    return { reason: 'NoProvenance', message: `${source} has no restack provenance, so the layers each dependency contributed are unknown; rebuild it with restack` };
  }
  const entry = provenance.applied[appliedIndex];
  if (entry === undefined) return { reason: 'Inconsistent', message: `${source}: no applied dependency #${appliedIndex}` };
  const layers = image.manifest.layers;
  const diffIds = image.config.rootfs.diff_ids;
  if (totalLayers(provenance) !== layers.length || diffIds.length !== layers.length) {
    return { reason: 'Inconsistent', message: `${source}: provenance covers ${totalLayers(provenance)} layers, the manifest has ${layers.length} and the config ${diffIds.length} diff_ids` };
  }

  const slice = appliedSlice(replacement, [], entry.base.count);
  if (slice.base.chain !== entry.base.chain) {
    return {
      reason: 'BaseChanged',
      message: `${replacement.ref}'s base changed (its ${entry.base.count} base layer${entry.base.count === 1 ? '' : 's'} differ from those of the version ${source} applied, ${entry.digest}); rebuild`,
    };
  }

  const { start, count } = entry.layers;
  const end = start + count;
  const format = manifestFormat(image.manifest);
  const newSlice = slice.layers.map((layer) => convertLayer(layer, format));
  const history = layerHistory(image.config, layers.length, (index) => `layer ${index}`);
  const groups: HistoryEntry[][] = [...history.perLayer.slice(0, start), ...slice.history, ...history.perLayer.slice(end)];
  const delta = newSlice.length - count;
  const shift = <T extends { layers: { start: number; count: number } }>(item: T, index: number): T =>
    index > appliedIndex ? { ...item, layers: { start: item.layers.start + delta, count: item.layers.count } } : item;
  const entryAfter: AppliedProvenance = { ...entry, digest: replacement.image.digest, layers: { start, count: newSlice.length } };
  const updated: Provenance = {
    ...provenance,
    applied: provenance.applied.map((item, index) => (index === appliedIndex ? entryAfter : shift(item, index))),
    own: shift(provenance.own, provenance.applied.length),
  };
  const manifest = { ...image.manifest, layers: [...layers.slice(0, start), ...newSlice, ...layers.slice(end)] };
  const config: ImageConfig = {
    ...image.config,
    rootfs: { ...image.config.rootfs, diff_ids: [...diffIds.slice(0, start), ...slice.diffIds, ...diffIds.slice(end)] },
    history: flattenHistory(groups, history.trailing),
  };
  return {
    ...writeProvenance(manifest, config, updated),
    provenance: updated,
    oldSlice: layers.slice(start, end),
    newSlice,
    above: layers.slice(end),
    entryBefore: entry,
    entryAfter,
  };
}

export function isRefusal(result: SwapPlan | SwapRefusal): result is SwapRefusal {
  return 'reason' in result;
}
