import type { HistoryEntry, ImageConfig } from '../oci/types.ts';

/**
 * The history entries that belong to each blob layer: the entry that made it plus the
 * `empty_layer` entries just before it. Entries after the last layer (config-only steps such as
 * CMD) are returned apart. When the history does not line up with the layers (missing, or a
 * different count of non-empty entries), each layer gets one synthesised entry, so transforms
 * can always keep history and layers aligned.
 */
export interface LayerHistory {
  perLayer: HistoryEntry[][];
  trailing: HistoryEntry[];
}

export function layerHistory(config: ImageConfig, layerCount: number, describe: (index: number) => string): LayerHistory {
  const entries = config.history ?? [];
  const nonEmpty = entries.filter((entry) => entry.empty_layer !== true).length;
  if (nonEmpty !== layerCount) {
    return { perLayer: Array.from({ length: layerCount }, (_, index) => [{ created_by: describe(index) }]), trailing: [] };
  }
  const perLayer: HistoryEntry[][] = [];
  let pending: HistoryEntry[] = [];
  for (const entry of entries) {
    pending.push(entry);
    if (entry.empty_layer !== true) {
      perLayer.push(pending);
      pending = [];
    }
  }
  return { perLayer, trailing: pending };
}

export function flattenHistory(groups: readonly HistoryEntry[][], trailing: readonly HistoryEntry[] = []): HistoryEntry[] {
  return [...groups.flat(), ...trailing];
}
