import { lchown, mkdir, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../../oci/digest.ts';
import { diffSnapshots } from '../diff/snapshot-compare.ts';
import type { LayerDiff } from '../diff/entries.ts';
import { BuildError } from '../errors.ts';
import type { BuildIdentity } from '../idmap.ts';
import type { UnpackSummary } from '../unpack.ts';
import { createSubvolume, deleteSubvolume, isOnBtrfs, snapshotSubvolume } from './btrfs-tools.ts';
import { directoryExists, isTemporary, listDir, publish, unpackSource, temporaryPath } from './cache.ts';
import { chainIds } from './chain.ts';
import type { LayerSource, PreparedChain, StorageDriver, WorkingRootfs } from './driver.ts';

/**
 * Layout under the root (a btrfs filesystem):
 *   chains/<chain id hex>   a subvolume holding the whole rootfs after that chain of layers,
 *                           made as a snapshot of the chain one layer shorter: a shared base is
 *                           unpacked once and every image above it costs only its own layers
 *   working/<name>          a snapshot of a chain, where a build step runs
 *   empty/                  the parent a rootfs with no layers is compared to
 */
export class BtrfsDriver implements StorageDriver {
  readonly kind = 'btrfs';
  readonly root: string;
  readonly identity: BuildIdentity;
  readonly #chains: string;
  readonly #working: string;

  private constructor(root: string, identity: BuildIdentity) {
    this.root = root;
    this.identity = identity;
    this.#chains = join(root, 'chains');
    this.#working = join(root, 'working');
  }

  static async open(root: string, identity: BuildIdentity): Promise<BtrfsDriver> {
    await mkdir(root, { recursive: true, mode: 0o755 });
    if (!(await isOnBtrfs(root))) {
      throw new BuildError('STORAGE_INVALID', `${root} is not on a btrfs filesystem; the btrfs storage driver needs one`, `run: restack setup-btrfs --size 20G ${root}, or use --storage overlay`);
    }
    const driver = new BtrfsDriver(root, identity);
    await mkdir(driver.#chains, { recursive: true, mode: 0o755 });
    await mkdir(driver.#working, { recursive: true, mode: 0o755 });
    return driver;
  }

  #chainDir(id: string): string {
    return join(this.#chains, digestHex(id));
  }

  async prepare(chain: readonly LayerSource[]): Promise<PreparedChain> {
    const ids = chainIds(chain.map((layer) => layer.diffId));
    let cached = ids.length;
    while (cached > 0 && !(await directoryExists(this.#chainDir(ids[cached - 1] as string)))) cached--;
    const unpacked: UnpackSummary[] = [];
    for (let index = cached; index < chain.length; index++) {
      const temporary = temporaryPath(this.#chains);
      await this.#subvolumeOf(index === 0 ? undefined : this.#chainDir(ids[index - 1] as string), temporary);
      try {
        unpacked.push(await unpackSource(chain[index] as LayerSource, temporary, { idShift: this.identity.idShift, whiteouts: 'apply' }));
        if (!(await publish(temporary, this.#chainDir(ids[index] as string)))) await deleteSubvolume(temporary);
      } catch (error) {
        await deleteSubvolume(temporary);
        throw error;
      }
    }
    return { chainId: ids.at(-1), unpacked };
  }

  /** A snapshot of `parent`, or an empty subvolume owned by the container's root. */
  async #subvolumeOf(parent: string | undefined, target: string): Promise<void> {
    if (parent !== undefined) return snapshotSubvolume(parent, target);
    await createSubvolume(target);
    await lchown(target, this.identity.idShift.uid, this.identity.idShift.gid);
  }

  async createWorking(chain: readonly LayerSource[], name: string): Promise<WorkingRootfs> {
    const { chainId, unpacked } = await this.prepare(chain);
    const rootfs = join(this.#working, name);
    await this.#release(rootfs);
    await this.#subvolumeOf(chainId === undefined ? undefined : this.#chainDir(chainId), rootfs);
    return { name, rootfs, chain: chain.map((layer) => layer.diffId), unpacked };
  }

  async diff(working: WorkingRootfs): Promise<LayerDiff> {
    const parent = chainIds(working.chain).at(-1);
    if (parent !== undefined) return diffSnapshots(this.#chainDir(parent), working.rootfs);
    const empty = join(this.root, 'empty');
    await mkdir(empty, { recursive: true });
    return diffSnapshots(empty, working.rootfs);
  }

  async commit(working: WorkingRootfs, diffId: string): Promise<void> {
    const id = chainIds([...working.chain, diffId]).at(-1) as string;
    if ((await directoryExists(this.#chainDir(id))) || !(await publish(working.rootfs, this.#chainDir(id)))) await this.#release(working.rootfs);
  }

  async discard(working: WorkingRootfs, options: { keep?: boolean } = {}): Promise<string | undefined> {
    if (options.keep === true) return working.rootfs;
    await this.#release(working.rootfs);
    return undefined;
  }

  async cleanup(): Promise<void> {
    for (const name of await listDir(this.#working)) await this.#release(join(this.#working, name));
    for (const name of await listDir(this.#chains)) if (isTemporary(name)) await this.#release(join(this.#chains, name));
  }

  async #release(subvolume: string): Promise<void> {
    if ((await readdir(subvolume).catch(() => undefined)) !== undefined) await deleteSubvolume(subvolume);
  }
}
