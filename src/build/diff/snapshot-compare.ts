import type { BigIntStats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { sortDiffEntries, type DiffEntry, type LayerDiff } from './entries.ts';
import { walkTree } from './walk.ts';
import { imageXattrs } from './xattrs.ts';

/**
 * The changes between a parent rootfs and a copy-on-write snapshot of it (btrfs). A snapshot keeps
 * inode numbers and ctimes, and the kernel moves ctime forward on every change of content,
 * metadata or xattrs, so an entry is unchanged when inode, ctime, mtime, size, mode and owner all
 * agree: no file is read. Directories count as changed only for mode or owner (their times change with
 * every child, and layer times are clamped anyway) or when something below them changed.
 */
export async function diffSnapshots(parent: string, child: string): Promise<LayerDiff> {
  const found: Found[] = [];
  await compareDirectory(parent, child, '', found);
  const adds = found.filter((entry): entry is Found & { kind: 'add' } => entry.kind === 'add');
  const { image } = await imageXattrs(adds.map((entry) => entry.source));
  const entries: DiffEntry[] = found.map((entry) =>
    entry.kind === 'add' ? { kind: 'add', path: entry.path, source: entry.source, xattrs: image.get(entry.source) ?? new Map() } : entry,
  );
  return { entries: sortDiffEntries(entries) };
}

type Found = { kind: 'add'; path: string; source: string } | { kind: 'whiteout'; path: string };

async function statChildren(dir: string): Promise<Map<string, BigIntStats>> {
  const names = await readdir(dir);
  const stats = await Promise.all(names.map((name) => lstat(join(dir, name), { bigint: true })));
  return new Map(names.map((name, i) => [name, stats[i] as BigIntStats]));
}

/**
 * ctime also moves when only the link count does (a hard link to the file was added or removed
 * elsewhere): that alone does not change the file, and overlayfs would not copy it up either.
 */
function contentChanged(before: BigIntStats, after: BigIntStats): boolean {
  if (before.ino !== after.ino || before.size !== after.size || before.mtimeNs !== after.mtimeNs || before.rdev !== after.rdev || metadataChanged(before, after)) return true;
  return before.ctimeNs !== after.ctimeNs && before.nlink === after.nlink;
}

function metadataChanged(before: BigIntStats, after: BigIntStats): boolean {
  return before.mode !== after.mode || before.uid !== after.uid || before.gid !== after.gid;
}

/** Appends the changes below `path`; answers whether there were any. */
async function compareDirectory(parentRoot: string, childRoot: string, path: string, found: Found[]): Promise<boolean> {
  const [before, after] = await Promise.all([statChildren(join(parentRoot, path)), statChildren(join(childRoot, path))]);
  let changed = false;
  for (const name of [...new Set([...before.keys(), ...after.keys()])].sort()) {
    const childPath = path === '' ? name : `${path}/${name}`;
    const old = before.get(name);
    const now = after.get(name);
    if (now === undefined) {
      found.push({ kind: 'whiteout', path: childPath });
      changed = true;
    } else if (old === undefined || old.isDirectory() !== now.isDirectory()) {
      await addSubtree(childRoot, childPath, now.isDirectory(), found);
      changed = true;
    } else if (now.isDirectory()) {
      const mark = found.length;
      const below = await compareDirectory(parentRoot, childRoot, childPath, found);
      if (below || metadataChanged(old, now)) {
        found.splice(mark, 0, { kind: 'add', path: childPath, source: join(childRoot, childPath) });
        changed = true;
      }
    } else if (contentChanged(old, now)) {
      found.push({ kind: 'add', path: childPath, source: join(childRoot, childPath) });
      changed = true;
    }
  }
  return changed;
}

async function addSubtree(childRoot: string, path: string, isDirectory: boolean, found: Found[]): Promise<void> {
  found.push({ kind: 'add', path, source: join(childRoot, path) });
  if (!isDirectory) return;
  for (const entry of await walkTree(childRoot, path)) found.push({ kind: 'add', path: entry.path, source: entry.hostPath });
}
