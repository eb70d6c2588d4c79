import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { digestHex } from '../oci/digest.ts';
import { BuildError } from '../build/errors.ts';
import { listSquashfsEntries } from '../build/squashfs-entries.ts';
import { LruCache } from '../oci/lru.ts';
import { listLayerEntries } from '../oci/layer-entries.ts';
import { layerCompression } from '../oci/mediatypes.ts';
import type { Store } from '../oci/store.ts';
import type { Descriptor } from '../oci/types.ts';
import { recordedLayerChanges } from '../swap/layer-record.ts';
import { classifyTarEntry, type LayerChanges } from '../swap/safety.ts';

/** Bumped when what a listing holds changes (v2: normalised paths, hard link targets), so older files are not read. */
const listingVersion = 'v2';

/** File entries of layer listings kept in memory by default: some tens of MB at most. */
export const defaultLayerCacheEntries = 100_000;

/**
 * What each blob layer changes, listed once per digest: blobs are immutable, so a listing is good
 * forever. Kept in memory (the most recently used, up to `maxEntries` file entries in all: a
 * long-running operator sees new layers with every build and swap) and, when a directory is
 * given, on disk across runs.
 */
export class LayerChangesCache {
  readonly #memory: LruCache<string, Promise<LayerChanges>>;
  readonly #directory: string | undefined;

  /** `maxEntries`: the file entries of listings kept in memory. */
  constructor(directory?: string, options: { maxEntries?: number } = {}) {
    this.#directory = directory;
    this.#memory = new LruCache(options.maxEntries ?? defaultLayerCacheEntries);
  }

  /**
   * The layer's changes. `recordKey`: the key its build signed its change record with
   * (swap/layer-record.ts), per call because one cache serves callers with different keys (the
   * operator's tenants); a layer whose record verifies under it is not read. What a record says
   * is never cached: only listings read from blobs are, which hold for everyone.
   */
  get(store: Store, repository: string, layer: Descriptor, recordKey?: Uint8Array): Promise<LayerChanges> {
    const recorded = recordKey === undefined ? undefined : recordedLayerChanges(layer, recordKey);
    if (recorded !== undefined) return Promise.resolve({ digest: layer.digest, entries: recorded });
    let pending = this.#memory.get(layer.digest);
    if (pending === undefined) {
      const loading = this.#load(store, repository, layer);
      pending = loading;
      this.#memory.set(layer.digest, loading);
      loading.then(
        // Weighed by its entries once listed, if it is still the one cached.
        (changes) => {
          if (this.#memory.has(layer.digest)) this.#memory.set(layer.digest, loading, 1 + ('entries' in changes ? changes.entries.length : 0));
        },
        () => this.#memory.delete(layer.digest),
      );
    }
    return pending;
  }

  /** Listings in memory, and their file entries. */
  get size(): { layers: number; entries: number } {
    return { layers: this.#memory.size, entries: this.#memory.weight };
  }

  async #load(store: Store, repository: string, layer: Descriptor): Promise<LayerChanges> {
    const file = this.#directory === undefined ? undefined : join(this.#directory, `${digestHex(layer.digest)}.${listingVersion}.json`);
    if (file !== undefined) {
      const cached = await readFile(file, 'utf8').then((text) => JSON.parse(text) as LayerChanges, () => undefined);
      if (cached !== undefined && cached.digest === layer.digest) return cached;
    }
    const changes = await listChanges(store, repository, layer);
    if (file !== undefined && this.#directory !== undefined && 'entries' in changes) {
      await mkdir(this.#directory, { recursive: true });
      const temporary = `${file}.${process.pid}.tmp`;
      await writeFile(temporary, JSON.stringify(changes));
      await rename(temporary, file);
    }
    return changes;
  }
}

async function listChanges(store: Store, repository: string, layer: Descriptor): Promise<LayerChanges> {
  return listBlobChanges(await store.openBlob(repository, layer), layer);
}

/**
 * A layer's changes from its bytes: tar headers, or a squashfs layer's listing; why not, when a
 * squashfs layer cannot be read here. What a build records on its own layers (swap/layer-record.ts).
 */
export async function listBlobChanges(blob: Readable, layer: Descriptor): Promise<LayerChanges> {
  if (layerCompression(layer.mediaType) === 'squashfs') {
    try {
      return { digest: layer.digest, entries: await listSquashfsEntries(blob, layer.digest) };
    } catch (error) {
      if (!(error instanceof BuildError)) throw error;
      return { digest: layer.digest, unavailable: error.message };
    }
  }
  const headers = (await listLayerEntries(blob, layer.mediaType)) ?? [];
  return { digest: layer.digest, entries: headers.map((header) => classifyTarEntry(header.name, header.type, header.linkname)) };
}
