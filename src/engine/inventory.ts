import { OciError } from '../oci/errors.ts';
import { parseReference, repositoryKey, type ImageReference } from '../oci/reference.ts';
import { readProvenance } from '../swap/image.ts';
import type { Provenance } from '../swap/provenance.ts';
import { readStoredImage, type OpenedReference } from './images.ts';

/** One input of one image: a row of `restack which`. */
export interface InventoryEntry {
  image: string;
  digest: string;
  input: string;
  inputDigest: string;
  role: 'from' | 'apply';
}

/** The inputs an image records in its provenance, one row each. */
export function provenanceEntries(image: string, digest: string, provenance: Provenance): InventoryEntry[] {
  const base = provenance.base === null ? [] : [{ image, digest, input: provenance.base.ref, inputDigest: provenance.base.digest, role: 'from' as const }];
  return [...base, ...provenance.applied.map((entry) => ({ image, digest, input: entry.ref, inputDigest: entry.digest, role: 'apply' as const }))];
}

/**
 * Which entries name the queried input: the same repository (any tag: the recorded tag may have
 * moved since), and the digest when the query has one.
 */
export function matchingEntries(entries: readonly InventoryEntry[], query: ImageReference): InventoryEntry[] {
  const wanted = repositoryKey({ ...query, ...(query.transport === 'oci' ? {} : { tag: undefined }) } as ImageReference);
  return entries.filter((entry) => {
    let parsed: ImageReference;
    try {
      parsed = parseReference(entry.input);
    } catch {
      return false;
    }
    return repositoryKey(parsed) === wanted && (query.digest === undefined || query.digest === entry.inputDigest);
  });
}

/** Runs `work` over `items` with at most `limit` at once. */
async function eachLimited<T>(items: readonly T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export interface RegistryScan {
  /** The repositories to look at (the catalog, filtered to a prefix). */
  repositories: readonly string[];
  /** Opens `docker://host/<repository>:<tag>`. */
  open: (repository: string, tag: string) => OpenedReference;
  concurrency: number;
}

/**
 * The inputs of every tagged image in the repositories, from provenance: manifests and configs
 * only, never a layer. Images without provenance are skipped; a tag deleted while scanning too.
 */
export async function scanRegistry(scan: RegistryScan): Promise<InventoryEntry[]> {
  const tagged: { repository: string; tag: string }[] = [];
  await eachLimited(scan.repositories, scan.concurrency, async (repository) => {
    const opened = scan.open(repository, 'latest');
    for (const tag of await opened.store.listTags(repository)) tagged.push({ repository, tag });
  });
  const entries: InventoryEntry[] = [];
  await eachLimited(tagged, scan.concurrency, async ({ repository, tag }) => {
    const opened = scan.open(repository, tag);
    try {
      const stored = await readStoredImage(opened);
      for (const platform of stored.platforms) {
        const provenance = readProvenance(platform.image, opened.display);
        if (provenance !== undefined) entries.push(...provenanceEntries(opened.display, stored.top.descriptor.digest, provenance));
      }
    } catch (error) {
      if (error instanceof OciError && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN' || error.code === 'MANIFEST_UNSUPPORTED')) return;
      throw error;
    }
  });
  return entries.sort((a, b) => a.image.localeCompare(b.image) || a.input.localeCompare(b.input));
}
