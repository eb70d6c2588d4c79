import type { Descriptor, HistoryEntry, ImageConfig } from '../oci/types.ts';
import { appliedSlice, type AppliedSlice, type NamedImage } from './compose.ts';
import { flattenHistory, layerHistory } from './history.ts';
import { convertLayer, dockerCompatible, manifestFormat, readProvenance, writeProvenance, type ImageParts } from './image.ts';
import { baseDigestKey, totalLayers, type AppliedProvenance, type Provenance } from './provenance.ts';

export interface SwapInput {
  /** The image to change, with its provenance; `source` names it in messages. */
  image: ImageParts;
  source: string;
  /** Which applied entry of the provenance to replace. */
  appliedIndex: number;
  /**
   * The version the image applied, read from the dependency's own repository at the digest the
   * provenance records: the evidence the provenance is checked against (see checkApplied).
   */
  previous: NamedImage;
  /** The new version of that dependency. */
  replacement: NamedImage;
}

export type SwapRefusal =
  | { reason: 'NoProvenance'; message: string }
  | { reason: 'BaseChanged'; message: string }
  | { reason: 'Inconsistent'; message: string }
  | { reason: 'FormatMismatch'; message: string };

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

/** Finds the applied entry whose reference is the one the caller trusts (the recipe's). */
export function findApplied(provenance: Provenance, sameReference: (ref: string) => boolean): number {
  return provenance.applied.findIndex((entry) => sameReference(entry.ref));
}

/** The layers below every applied slice: the image's own base. */
function imageBase(image: ImageParts, provenance: Provenance): Descriptor[] {
  return image.manifest.layers.slice(0, provenance.base?.layers.count ?? 0);
}

const sameBase = (a: AppliedProvenance['base'], b: AppliedProvenance['base']) => a.count === b.count && a.chain === b.chain;
const plural = (count: number, word: string) => `${count} ${word}${count === 1 ? '' : 's'}`;

/**
 * Checks an applied entry of the image's provenance against the image it names, read from the
 * trusted repository: the same digest, the same base, and the image's layers in the recorded
 * range are exactly that version's own layers. Provenance is written by whoever pushed the image,
 * so it is evidence to check, never a source of truth. Answers the slice, or why it does not hold.
 */
export function checkApplied(image: ImageParts, provenance: Provenance, appliedIndex: number, previous: NamedImage, source: string): AppliedSlice | SwapRefusal {
  const entry = provenance.applied[appliedIndex];
  if (entry === undefined) return { reason: 'Inconsistent', message: `${source}: no applied dependency #${appliedIndex}` };
  const recorded = image.manifest.layers.slice(entry.layers.start, entry.layers.start + entry.layers.count).map((layer) => layer.digest);
  const slice = appliedSlice(previous, imageBase(image, provenance));
  const own = slice.layers.map((layer) => layer.digest);
  if (previous.image.digest !== entry.digest || !sameBase(slice.base, entry.base) || own.join() !== recorded.join()) {
    return {
      reason: 'Inconsistent',
      message:
        `${source}'s provenance says layers ${entry.layers.start}..${entry.layers.start + entry.layers.count - 1} are the own layers of ${previous.ref}@${entry.digest}, ` +
        `but that image's own layers (${plural(own.length, 'layer')} above a base of ${plural(slice.base.count, 'layer')}) are not those; rebuild`,
    };
  }
  return slice;
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

  const was = checkApplied(image, provenance, appliedIndex, input.previous, source);
  if ('reason' in was) return was;
  // go-containerregistry's rebase asks the same: the new version's base is exactly the old one
  const slice = appliedSlice(replacement, imageBase(image, provenance));
  if (!sameBase(slice.base, was.base)) {
    return {
      reason: 'BaseChanged',
      message:
        `${replacement.ref}'s base changed: ${replacement.image.digest} is built on ${plural(slice.base.count, 'layer')} (chain ${slice.base.chain.slice(0, 19) || 'empty'}), ` +
        `the version ${source} applied, ${entry.digest}, on ${plural(was.base.count, 'layer')} (chain ${was.base.chain.slice(0, 19) || 'empty'}); rebuild`,
    };
  }
  // an image restack did not build has no provenance; the standard base annotations, when both versions carry them, still tell
  const [baseWas, baseNow] = [input.previous, replacement].map((named) => named.image.manifest.annotations?.[baseDigestKey]);
  if (baseWas !== undefined && baseNow !== undefined && baseWas !== baseNow) {
    return { reason: 'BaseChanged', message: `${replacement.ref}'s base changed: ${replacement.image.digest} says it is built on ${baseNow}, the version ${source} applied on ${baseWas}; rebuild` };
  }

  const { start, count } = entry.layers;
  const end = start + count;
  const format = manifestFormat(image.manifest);
  if (format === 'docker' && !dockerCompatible(slice.layers)) {
    const kinds = [...new Set(slice.layers.filter((layer) => !dockerCompatible([layer])).map((layer) => layer.mediaType))].join(', ');
    return {
      reason: 'FormatMismatch',
      message: `${source} is a Docker schema2 image, which cannot name ${replacement.ref}'s ${kinds} layers; rebuild (it is then written as OCI)`,
    };
  }
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
  // a swapped image is another image: a `subject` naming what the old one referred to no longer holds
  const { subject: _subject, ...unchanged } = image.manifest;
  const manifest = { ...unchanged, layers: [...layers.slice(0, start), ...newSlice, ...layers.slice(end)] };
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
