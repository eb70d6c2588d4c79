import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';

export interface WalkedEntry {
  path: string;
  hostPath: string;
  dirent: Dirent;
}

/** Lists a directory tree depth-first, children sorted by name; never follows symlinks. */
export async function walkTree(hostRoot: string, path = ''): Promise<WalkedEntry[]> {
  const out: WalkedEntry[] = [];
  const dirents = (await readdir(join(hostRoot, path), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const dirent of dirents) {
    const childPath = path === '' ? dirent.name : `${path}/${dirent.name}`;
    out.push({ path: childPath, hostPath: join(hostRoot, childPath), dirent });
    if (dirent.isDirectory()) out.push(...(await walkTree(hostRoot, childPath)));
  }
  return out;
}
