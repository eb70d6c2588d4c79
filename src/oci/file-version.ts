import { stat } from 'node:fs/promises';

/**
 * What identifies a version of a file: a mounted Secret is updated by swapping a symlink (a new
 * inode), a login or an editor rewrites the file. 'absent' when it does not exist.
 */
export async function fileVersion(path: string): Promise<string> {
  try {
    const stats = await stat(path);
    return `${stats.ino}:${stats.mtimeMs}:${stats.size}`;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'absent';
    throw error;
  }
}
