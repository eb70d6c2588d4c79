import { randomBytes } from 'node:crypto';
import { lchown, mkdir, readdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { IdShift } from '../idmap.ts';
import { unpackLayer, type UnpackSummary, type WhiteoutMode } from '../unpack.ts';
import type { LayerSource } from './driver.ts';

/** Pieces both drivers share: temp names, atomic publication into the cache, unpacking a source. */

export function temporaryPath(dir: string): string {
  return join(dir, `.tmp-${randomBytes(6).toString('hex')}`);
}

export function isTemporary(name: string): boolean {
  return name.startsWith('.tmp-');
}

/**
 * Moves a finished tree to its cache name. Another build may have published the same content
 * first: then ours is not needed, and the answer is false (the caller removes it).
 */
export async function publish(from: string, to: string): Promise<boolean> {
  try {
    await rename(from, to);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOTEMPTY' || code === 'EEXIST') return false;
    throw error;
  }
}

/** A directory that the container's root owns, as the root of a rootfs must be. */
export async function makeRootDirectory(path: string, ids: IdShift): Promise<void> {
  await mkdir(path, { mode: 0o755 });
  await lchown(path, ids.uid, ids.gid);
}

export async function unpackSource(
  source: LayerSource,
  root: string,
  options: { idShift: IdShift; whiteouts: WhiteoutMode; lowerRoots?: readonly string[] },
): Promise<UnpackSummary> {
  return unpackLayer(await source.open(), {
    root,
    mediaType: source.mediaType,
    digest: source.digest,
    expectedDiffId: source.diffId,
    idShift: options.idShift,
    whiteouts: options.whiteouts,
    overlayXattrPrefix: 'user',
    lowerRoots: options.lowerRoots,
  });
}

export async function removeTree(path: string): Promise<void> {
  await rm(path, { recursive: true, force: true });
}

export async function directoryExists(path: string): Promise<boolean> {
  return readdir(path).then(
    () => true,
    () => false,
  );
}

export async function listDir(path: string): Promise<string[]> {
  return readdir(path).catch(() => []);
}
