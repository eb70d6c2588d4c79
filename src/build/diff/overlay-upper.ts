import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { sortDiffEntries, type DiffEntry, type LayerDiff } from './entries.ts';
import { walkTree, type WalkedEntry } from './walk.ts';
import { imageXattrs } from './xattrs.ts';

/**
 * The changes an overlayfs upper dir holds: a 0/0 character device is a deletion, a directory with
 * the `overlay.opaque=y` xattr hides everything below it, every other entry is new or changed.
 *
 * Overlayfs copies a directory up whenever anything below it is touched (LXC creating and removing
 * a mount point is enough), so a directory that also exists in the lower layers is kept only when
 * its mode or owner differ, it is opaque, or something below it changed: the same rule the btrfs
 * snapshot comparison follows, so both drivers give the same layer for the same run.
 * With no lower dirs (a plain directory made into a layer) every entry is kept.
 */
export async function diffFromUpper(upper: string, lowerDirs: readonly string[] = []): Promise<LayerDiff> {
  const walked = await walkTree(upper);
  const stats = new Map<string, Stats>();
  await Promise.all(walked.map(async (entry) => stats.set(entry.path, await lstat(entry.hostPath))));
  const isWhiteout = (entry: WalkedEntry) => entry.dirent.isCharacterDevice() && stats.get(entry.path)?.rdev === 0;
  const kept = walked.filter((entry) => !isWhiteout(entry));
  const { image, opaque } = await imageXattrs(kept.map((entry) => entry.hostPath));

  const entries: DiffEntry[] = [];
  const changedBelow = new Set<string>();
  const markAncestors = (path: string) => {
    for (let slash = path.lastIndexOf('/'); slash > 0; slash = path.lastIndexOf('/', slash - 1)) changedBelow.add(path.slice(0, slash));
  };
  const candidates: WalkedEntry[] = [];
  for (const entry of walked) {
    if (isWhiteout(entry)) {
      entries.push({ kind: 'whiteout', path: entry.path });
      markAncestors(entry.path);
    } else if (entry.dirent.isDirectory() && !opaque.has(entry.hostPath) && (await sameDirectoryBelow(entry, stats, lowerDirs))) {
      candidates.push(entry);
    } else {
      entries.push({ kind: 'add', path: entry.path, source: entry.hostPath, xattrs: image.get(entry.hostPath) ?? new Map() });
      if (entry.dirent.isDirectory() && opaque.has(entry.hostPath)) entries.push({ kind: 'opaque', path: entry.path });
      markAncestors(entry.path);
    }
  }
  for (const entry of candidates) {
    if (changedBelow.has(entry.path)) entries.push({ kind: 'add', path: entry.path, source: entry.hostPath, xattrs: image.get(entry.hostPath) ?? new Map() });
  }
  return { entries: sortDiffEntries(entries) };
}

/** Whether the topmost lower layer holding this path has a directory there with the same mode and owner. */
async function sameDirectoryBelow(entry: WalkedEntry, stats: Map<string, Stats>, lowerDirs: readonly string[]): Promise<boolean> {
  const upper = stats.get(entry.path) as Stats;
  for (const lowerDir of lowerDirs) {
    const below = await lstat(join(lowerDir, entry.path)).catch(() => undefined);
    if (below === undefined) continue;
    return below.isDirectory() && below.mode === upper.mode && below.uid === upper.uid && below.gid === upper.gid;
  }
  return false;
}
