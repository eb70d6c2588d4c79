import { mkdir, statfs, access } from 'node:fs/promises';
import { BuildError } from '../errors.ts';
import { runTool } from '../tools.ts';
import { isMountPoint } from './mounts.ts';

/** Thin wrappers over btrfs-progs and the loop-mount setup. */

const btrfsMagic = 0x9123683e;

export async function isOnBtrfs(path: string): Promise<boolean> {
  return (await statfs(path)).type === btrfsMagic;
}

export async function createSubvolume(path: string): Promise<void> {
  await runTool('btrfs', ['subvolume', 'create', path]);
}

export async function snapshotSubvolume(source: string, target: string): Promise<void> {
  await runTool('btrfs', ['subvolume', 'snapshot', source, target]);
}

export async function deleteSubvolume(path: string): Promise<void> {
  await runTool('btrfs', ['subvolume', 'delete', path]);
}

export interface BtrfsSetup {
  /** Where the filesystem is mounted. */
  dir: string;
  /** Size of the sparse image file, as truncate(1) reads it: 20G, 512M. */
  size: string;
  /** The image file; default `<dir>.btrfs.img`. */
  image?: string;
}

export function validateSize(size: string): string {
  if (!/^[1-9]\d*[KMGT]?$/.test(size)) {
    throw new BuildError('STORAGE_INVALID', `btrfs size "${size}" is not a size`, 'give a number with an optional K, M, G or T suffix, e.g. --size 20G');
  }
  return size;
}

/**
 * Makes `dir` a btrfs mount backed by a sparse loop image (for hosts whose disks are not btrfs).
 * Idempotent: an existing image is reused, a mounted btrfs is left as it is.
 * `user_subvol_rm_allowed` lets a non-root owner delete its subvolumes.
 */
export async function setupBtrfs(setup: BtrfsSetup): Promise<{ dir: string; image: string }> {
  const image = setup.image ?? `${setup.dir.replace(/\/+$/, '')}.btrfs.img`;
  validateSize(setup.size);
  await mkdir(setup.dir, { recursive: true });
  if ((await isMountPoint(setup.dir)) && (await isOnBtrfs(setup.dir))) return { dir: setup.dir, image };
  const fresh = await access(image).then(
    () => false,
    () => true,
  );
  if (fresh) {
    await runTool('truncate', ['-s', setup.size, image]);
    await runTool('mkfs.btrfs', ['-q', image]);
  }
  try {
    await runTool('mount', ['-o', 'loop,user_subvol_rm_allowed', image, setup.dir]);
  } catch (error) {
    throw new BuildError(
      'STORAGE_INVALID',
      `cannot mount ${image} on ${setup.dir}: ${(error as Error).message}`,
      'a loop mount needs root and /dev/loop-control; where there are none (a pod), use --storage overlay',
      { cause: error },
    );
  }
  return { dir: setup.dir, image };
}

export async function teardownBtrfs(dir: string): Promise<void> {
  if (await isMountPoint(dir)) await runTool('umount', [dir]);
}
