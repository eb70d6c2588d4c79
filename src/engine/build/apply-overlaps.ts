import type { LayerChanges } from '../../swap/safety.ts';

/** The layers one applied image contributes, with what each changes. */
export interface AppliedChanges {
  ref: string;
  layers: readonly LayerChanges[];
}

export interface SharedPath {
  path: string;
  refs: string[];
}

/**
 * Paths (files, deletions, opaque directories; not plain directories) that more than one applied
 * image changes: the later one wins in the image, which is rarely what the recipe meant.
 */
export function pathsChangedBySeveral(applied: readonly AppliedChanges[]): SharedPath[] {
  const owners = new Map<string, Set<string>>();
  for (const { ref, layers } of applied) {
    for (const layer of layers) {
      if ('unavailable' in layer) continue;
      for (const entry of layer.entries) {
        if (entry.kind === 'directory') continue;
        owners.set(entry.path, (owners.get(entry.path) ?? new Set()).add(ref));
      }
    }
  }
  return [...owners]
    .filter(([, refs]) => refs.size > 1)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([path, refs]) => ({ path: `/${path}`, refs: [...refs] }));
}
