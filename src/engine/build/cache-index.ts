import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { z } from 'zod';
import { descriptorSchema, historySchema } from '../../oci/types.ts';
import type { OwnLayer } from '../../swap/compose.ts';

/** What a build of one layer produced, beyond its inputs: its own blob layers and generated labels. */
const entrySchema = z.object({
  layer: z.string(),
  own: z.array(z.object({ descriptor: descriptorSchema, diffId: z.string(), history: historySchema })),
  labels: z.record(z.string(), z.string()),
});
export type CacheEntry = z.infer<typeof entrySchema> & { own: OwnLayer[] };

const indexSchema = z.object({ version: z.literal(1), entries: z.array(z.object({ key: z.string(), entry: entrySchema })) });

/** Entries kept per layer name: enough to flip between a few variants without rebuilding. */
const keptPerLayer = 4;

/**
 * The build cache index (`<roots-dir>/build-cache.json`): cache key -> the layer's own blobs in
 * the output layout. A damaged or foreign file is treated as empty: the cost is a rebuild.
 */
export class BuildCacheIndex {
  readonly #path: string;
  #entries: { key: string; entry: CacheEntry }[];

  private constructor(path: string, entries: { key: string; entry: CacheEntry }[]) {
    this.#path = path;
    this.#entries = entries;
  }

  static async open(path: string): Promise<BuildCacheIndex> {
    const text = await readFile(path, 'utf8').catch(() => undefined);
    let entries: { key: string; entry: CacheEntry }[] = [];
    if (text !== undefined) {
      try {
        const parsed = indexSchema.safeParse(JSON.parse(text));
        if (parsed.success) entries = parsed.data.entries;
      } catch {
        // not JSON: start afresh
      }
    }
    return new BuildCacheIndex(path, entries);
  }

  get(key: string): CacheEntry | undefined {
    return this.#entries.find((candidate) => candidate.key === key)?.entry;
  }

  /** Records an entry as the newest for its layer, keeping a few older ones, and saves the index. */
  async put(key: string, entry: CacheEntry): Promise<void> {
    const others = this.#entries.filter((candidate) => candidate.key !== key);
    const sameLayer = others.filter((candidate) => candidate.entry.layer === entry.layer);
    const dropped = new Set(sameLayer.slice(0, Math.max(0, sameLayer.length - (keptPerLayer - 1))));
    this.#entries = [...others.filter((candidate) => !dropped.has(candidate)), { key, entry }];
    await mkdir(dirname(this.#path), { recursive: true });
    const temporary = `${this.#path}.tmp-${randomBytes(4).toString('hex')}`;
    await writeFile(temporary, JSON.stringify({ version: 1, entries: this.#entries }));
    await rename(temporary, this.#path);
  }
}
