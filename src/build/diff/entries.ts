import type { Xattrs } from '../xattr.ts';

/**
 * A layer's changes as the layer writer consumes them, whichever storage driver found them.
 * `path` is a container path without a leading slash; `source` is where the new content is on the host.
 */
export type DiffEntry =
  | { kind: 'add'; path: string; source: string; xattrs: Xattrs }
  | { kind: 'whiteout'; path: string }
  | { kind: 'opaque'; path: string };

export interface LayerDiff {
  /** In layer order: parents before children, an opaque marker first in its directory. */
  entries: DiffEntry[];
}

function sortKey(entry: DiffEntry): string[] {
  const components = entry.path === '' ? [] : entry.path.split('/');
  if (entry.kind === 'opaque') return [...components, ''];
  if (entry.kind === 'whiteout') return [...components.slice(0, -1), `.wh.${components[components.length - 1] ?? ''}`];
  return components;
}

function compareKeys(a: readonly string[], b: readonly string[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const x = a[i] as string;
    const y = b[i] as string;
    if (x !== y) return x < y ? -1 : 1;
  }
  return a.length - b.length;
}

/** Sorts component by component, so a directory's subtree follows it directly, and the output is stable. */
export function sortDiffEntries(entries: DiffEntry[]): DiffEntry[] {
  return entries
    .map((entry) => ({ entry, key: sortKey(entry) }))
    .sort((a, b) => compareKeys(a.key, b.key))
    .map(({ entry }) => entry);
}

/** The container paths a layer touches: what swap safety compares between layers. */
export function changedPaths(diff: LayerDiff): string[] {
  return diff.entries.filter((entry) => entry.kind !== 'opaque').map((entry) => entry.path);
}
