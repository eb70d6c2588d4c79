import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../../oci/digest.ts';
import { diffFromUpper } from '../diff/overlay-upper.ts';
import type { LayerDiff } from '../diff/entries.ts';
import type { BuildIdentity } from '../idmap.ts';
import type { UnpackSummary } from '../unpack.ts';
import { directoryExists, isTemporary, listDir, makeRootDirectory, publish, removeTree, temporaryPath, unpackSource } from './cache.ts';
import { chainId, chainIds } from './chain.ts';
import type { LayerSource, PreparedChain, StorageDriver, WorkingRootfs } from './driver.ts';
import { isMountPoint, mountOverlay, unmount } from './mounts.ts';

/**
 * Layout under the root:
 *   layers/<diff_id hex>/         one layer, unpacked alone in overlayfs format (whiteouts as 0/0
 *                                 devices, opaque dirs as user.overlay.opaque), shared by every chain
 *   layers/chain-<chain id hex>/  a layer whose hard links to lower layers' files were copied: its
 *                                 tree depends on the layers below, so it is kept per chain (as
 *                                 containerd keys snapshots by chain ID) and never reused on another
 *   layers/empty/                 the lower dir of a rootfs with no layers
 *   working/<name>/{upper,work,rootfs}   a build step: rootfs is the overlay mount, upper its changes
 * Needs no loop device and no btrfs, and works inside an unprivileged user namespace.
 */
export class OverlayDriver implements StorageDriver {
  readonly kind = 'overlay';
  readonly root: string;
  readonly identity: BuildIdentity;
  readonly #layers: string;
  readonly #working: string;

  constructor(root: string, identity: BuildIdentity) {
    this.root = root;
    this.identity = identity;
    this.#layers = join(root, 'layers');
    this.#working = join(root, 'working');
  }

  /** The directory names (under layers/) of a chain's layers as unpacked, bottom first; undefined for a layer not unpacked yet. */
  async #layerNames(diffIds: readonly string[]): Promise<(string | undefined)[]> {
    const chain = chainIds(diffIds);
    return Promise.all(
      diffIds.map(async (diffId, index) => {
        for (const name of [digestHex(diffId), `chain-${digestHex(chain[index] as string)}`]) if (await directoryExists(join(this.#layers, name))) return name;
        return undefined;
      }),
    );
  }

  async #unpackedNames(diffIds: readonly string[]): Promise<string[]> {
    const names = await this.#layerNames(diffIds);
    return names.map((name, index) => {
      if (name === undefined) throw new Error(`overlay storage: layer ${diffIds[index]} of the chain is not unpacked`);
      return name;
    });
  }

  async prepare(chain: readonly LayerSource[]): Promise<PreparedChain> {
    await mkdir(this.#layers, { recursive: true, mode: 0o755 });
    const diffIds = chain.map((layer) => layer.diffId);
    const names = await this.#layerNames(diffIds);
    const ids = chainIds(diffIds);
    const unpacked: UnpackSummary[] = [];
    for (const [index, source] of chain.entries()) {
      if (names[index] !== undefined) continue;
      const temporary = temporaryPath(this.#layers);
      await makeRootDirectory(temporary, this.identity.idShift);
      try {
        const lowerRoots = (names.slice(0, index) as string[]).reverse().map((name) => join(this.#layers, name));
        const summary = await unpackSource(source, temporary, { idShift: this.identity.idShift, whiteouts: 'overlay', lowerRoots });
        unpacked.push(summary);
        const name = summary.copiedFromLower.length === 0 ? digestHex(source.diffId) : `chain-${digestHex(ids[index] as string)}`;
        if (!(await publish(temporary, join(this.#layers, name)))) await removeTree(temporary);
        names[index] = name;
      } catch (error) {
        await removeTree(temporary);
        throw error;
      }
    }
    return { chainId: chainId(diffIds), unpacked };
  }

  async createWorking(chain: readonly LayerSource[], name: string): Promise<WorkingRootfs> {
    const { unpacked } = await this.prepare(chain);
    const dir = join(this.#working, name);
    await this.#release(dir);
    await mkdir(dir, { recursive: true, mode: 0o755 });
    await makeRootDirectory(join(dir, 'upper'), this.identity.idShift);
    await mkdir(join(dir, 'work'), { mode: 0o700 });
    await mkdir(join(dir, 'rootfs'), { mode: 0o755 });
    const lower = (await this.#unpackedNames(chain.map((layer) => layer.diffId))).reverse();
    if (lower.length === 0) {
      await mkdir(join(this.#layers, 'empty'), { recursive: true, mode: 0o755 });
      lower.push('empty');
    }
    const fromLayers = join('..', 'working', name);
    await mountOverlay({ lower, upper: join(fromLayers, 'upper'), work: join(fromLayers, 'work'), target: join(dir, 'rootfs'), cwd: this.#layers });
    return { name, rootfs: join(dir, 'rootfs'), chain: chain.map((layer) => layer.diffId), unpacked };
  }

  async diff(working: WorkingRootfs): Promise<LayerDiff> {
    const lowerDirs = (await this.#unpackedNames(working.chain)).reverse().map((name) => join(this.#layers, name));
    return diffFromUpper(join(this.#working, working.name, 'upper'), lowerDirs);
  }

  async commit(working: WorkingRootfs, diffId: string): Promise<void> {
    const dir = join(this.#working, working.name);
    await unmountIfMounted(join(dir, 'rootfs'));
    // an upper dir holds whole copies (overlayfs copies up before linking): it depends on no chain
    const layerDir = join(this.#layers, digestHex(diffId));
    if (!(await directoryExists(layerDir))) await publish(join(dir, 'upper'), layerDir);
    await removeTree(dir);
  }

  async discard(working: WorkingRootfs, options: { keep?: boolean } = {}): Promise<string | undefined> {
    if (options.keep === true) return working.rootfs;
    await this.#release(join(this.#working, working.name));
    return undefined;
  }

  async cleanup(): Promise<void> {
    for (const name of await listDir(this.#working)) await this.#release(join(this.#working, name));
    for (const name of await listDir(this.#layers)) if (isTemporary(name)) await removeTree(join(this.#layers, name));
  }

  async #release(dir: string): Promise<void> {
    await unmountIfMounted(join(dir, 'rootfs'));
    await removeTree(dir);
  }
}

async function unmountIfMounted(target: string): Promise<void> {
  if (await isMountPoint(target)) await unmount(target);
}
