import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { digestHex } from '../oci/digest.ts';
import { BuildError } from '../build/errors.ts';
import { listSquashfsEntries } from '../build/squashfs-entries.ts';
import { listLayerEntries } from '../oci/layer-entries.ts';
import { layerCompression } from '../oci/mediatypes.ts';
import type { Store } from '../oci/store.ts';
import type { Descriptor } from '../oci/types.ts';
import { recordedLayerChanges } from '../swap/layer-record.ts';
import { classifyTarEntry, type LayerChanges } from '../swap/safety.ts';

/** Bumped when what a listing holds changes (v2: normalised paths, hard link targets), so older files are not read. */
const listingVersion = 'v2';

/**
 * What each blob layer changes, listed once per digest: blobs are immutable, so a listing is good
 * forever. Kept in memory and, when a directory is given, on disk across runs.
 */
export class LayerChangesCache {
  readonly #memory = new Map<string, Promise<LayerChanges>>();
  readonly #directory: string | undefined;
  readonly #recordKey: Uint8Array | undefined;

  /**
   * `recordKey`: the key restack's builds sign their layers' change records with
   * (swap/layer-record.ts); a layer whose record verifies under it is not read.
   */
  constructor(directory?: string, options: { recordKey?: Uint8Array } = {}) {
    this.#directory = directory;
    this.#recordKey = options.recordKey;
  }

  get(store: Store, repository: string, layer: Descriptor): Promise<LayerChanges> {
    const recorded = this.#recordKey === undefined ? undefined : recordedLayerChanges(layer, this.#recordKey);
    if (recorded !== undefined) return Promise.resolve({ digest: layer.digest, entries: recorded });
    let pending = this.#memory.get(layer.digest);
    if (pending === undefined) {
      pending = this.#load(store, repository, layer);
      this.#memory.set(layer.digest, pending);
      pending.catch(() => this.#memory.delete(layer.digest));
    }
    return pending;
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
