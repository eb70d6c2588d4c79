import type { Readable } from 'node:stream';
import type { LayerDiff } from '../diff/entries.ts';
import type { BuildIdentity } from '../idmap.ts';
import type { UnpackSummary } from '../unpack.ts';

/** One blob layer of an image, as the engine hands it over: identified, and openable when it must be unpacked. */
export interface LayerSource {
  /** The image config's diff_id: the cache key. */
  diffId: string;
  digest: string;
  mediaType: string;
  open(): Promise<Readable>;
}

export interface PreparedChain {
  /** The OCI ChainID of the layers; undefined for an empty chain (scratch). */
  chainId: string | undefined;
  /** The layers that were not cached and were unpacked now, with what each wrote (in chain order). */
  unpacked: UnpackSummary[];
}

/** A writable rootfs over a chain of layers, where a `run:` step makes the next layer. */
export interface WorkingRootfs {
  name: string;
  /** Host path of the rootfs to give the container. */
  rootfs: string;
  /** diff_ids of the layers below. */
  chain: readonly string[];
  unpacked: UnpackSummary[];
}

export type StorageKind = 'btrfs' | 'overlay';

/**
 * Where rootfs trees live between build steps. Unpacked layers are cached by content (diff_id or
 * chain id), so images that share a base unpack it once. The engine:
 *   createWorking(chain) -> run in rootfs -> diff() -> write the layer -> commit(diffId)
 * or discard() on failure, keeping the rootfs for inspection when asked.
 */
export interface StorageDriver {
  readonly kind: StorageKind;
  readonly root: string;
  readonly identity: BuildIdentity;
  /** Makes sure every layer of the chain is unpacked (verifying each diff_id). */
  prepare(chain: readonly LayerSource[]): Promise<PreparedChain>;
  /** A fresh writable rootfs over the chain; a stale one of the same name is replaced. */
  createWorking(chain: readonly LayerSource[], name: string): Promise<WorkingRootfs>;
  /** What changed in the working rootfs since createWorking. */
  diff(working: WorkingRootfs): Promise<LayerDiff>;
  /** Caches the working rootfs as the chain plus the layer written from its diff, and releases it. */
  commit(working: WorkingRootfs, diffId: string): Promise<void>;
  /** Releases the working rootfs; with keep, leaves it in place and answers its path. */
  discard(working: WorkingRootfs, options?: { keep?: boolean }): Promise<string | undefined>;
  /** Removes every working rootfs and unfinished unpack (after a crash, or at the end of a build pod). */
  cleanup(): Promise<void>;
}
