import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { digestHex } from '../oci/digest.ts';
import { LruCache } from '../oci/lru.ts';
import { listLayerEntries } from '../oci/layer-entries.ts';
import type { Store } from '../oci/store.ts';
import type { Descriptor } from '../oci/types.ts';
import { classifyTarEntry, type LayerChanges } from '../swap/safety.ts';

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

  constructor(directory?: string, maxEntries = defaultLayerCacheEntries) {
    this.#directory = directory;
    this.#memory = new LruCache(maxEntries);
  }

  get(store: Store, repository: string, layer: Descriptor): Promise<LayerChanges> {
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
    const file = this.#directory === undefined ? undefined : join(this.#directory, `${digestHex(layer.digest)}.json`);
    if (file !== undefined) {
      const cached = await readFile(file, 'utf8').then((text) => JSON.parse(text) as LayerChanges, () => undefined);
      if (cached !== undefined && cached.digest === layer.digest) return cached;
    }
    const headers = await listLayerEntries(await store.openBlob(repository, layer), layer.mediaType);
    const changes: LayerChanges =
      headers === undefined
        ? { digest: layer.digest, unavailable: `${layer.mediaType} layers cannot be listed; overlap analysis does not cover this layer` }
        : { digest: layer.digest, entries: headers.map((header) => classifyTarEntry(header.name, header.type)) };
    if (file !== undefined && this.#directory !== undefined) {
      await mkdir(this.#directory, { recursive: true });
      const temporary = `${file}.${process.pid}.tmp`;
      await writeFile(temporary, JSON.stringify(changes));
      await rename(temporary, file);
    }
    return changes;
  }
}
