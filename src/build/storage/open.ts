import { chmod, mkdir } from 'node:fs/promises';
import type { BuildIdentity } from '../idmap.ts';
import { isOnBtrfs } from './btrfs-tools.ts';
import { BtrfsDriver } from './btrfs.ts';
import type { StorageDriver, StorageKind } from './driver.ts';
import { OverlayDriver } from './overlay.ts';

export type StorageChoice = StorageKind | 'auto';

/** Opens the storage at `root`; `auto` picks btrfs when the root is on btrfs, else overlay. */
export async function openStorage(root: string, choice: StorageChoice, identity: BuildIdentity): Promise<StorageDriver> {
  await mkdir(root, { recursive: true });
  // the container's root, a mapped id, must be able to walk into the rootfs trees below
  await chmod(root, 0o755);
  const kind = choice === 'auto' ? ((await isOnBtrfs(root)) ? 'btrfs' : 'overlay') : choice;
  return kind === 'btrfs' ? BtrfsDriver.open(root, identity) : new OverlayDriver(root, identity);
}
