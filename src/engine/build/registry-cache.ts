import { Writable, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import { z } from 'zod';
import { DigestingHasher, sha256Digest } from '../../oci/digest.ts';
import { OciError } from '../../oci/errors.ts';
import { layerCompression, MediaType } from '../../oci/mediatypes.ts';
import { descriptorSchema, historySchema, isIndex, type Descriptor } from '../../oci/types.ts';
import { layerMediaTypes } from '../../build/layer-writer.ts';
import type { OpenedReference } from '../images.ts';
import { transferBlob } from '../publish.ts';
import type { CacheEntry } from './cache-index.ts';

/**
 * A build cache in a registry repository (`--cache-repo`, `spec.builder.cacheRepository`), the
 * second level after the build's own cache index: a layer built on one machine or in one build pod
 * is taken by the next without a container. Each entry is an OCI manifest tagged `restack-<key
 * hex>`: its config is the record below, its layers the layer's own blobs (so the registry keeps
 * them). An entry is trusted only when the record and the manifest name the key looked up, list
 * the same blobs, and every blob's uncompressed content hashes to the diff_id the record gives;
 * anything else is a miss, reported, never used.
 */

export const cacheConfigMediaType = 'application/vnd.restack.build-cache.v1+json';
export const cacheKeyAnnotation = 'dev.restack.build-cache.key';

const recordSchema = z.object({
  key: z.string(),
  layer: z.string(),
  own: z.array(z.object({ descriptor: descriptorSchema, diffId: z.string(), history: historySchema })),
  labels: z.record(z.string(), z.string()),
});

export function cacheTag(key: string): string {
  return `restack-${key.slice('sha256:'.length)}`;
}

/** The sha256 of a layer blob's uncompressed content (its diff_id), read from a stream of the blob. */
async function uncompressedDigest(blob: Readable, mediaType: string): Promise<string> {
  const compression = layerCompression(mediaType);
  const hasher = new DigestingHasher();
  const stages = compression === 'gzip' ? [createGunzip()] : compression === 'zstd' ? [createZstdDecompress()] : [];
  const hashing = new Writable({
    write(chunk: Uint8Array, _encoding, done) {
      hasher.update(chunk);
      done();
    },
  });
  await pipeline([blob, ...stages, hashing]);
  return hasher.digest();
}

/** What a lookup found: a trusted entry (its blobs now in the layout), or why there is none. */
export type CacheLookup = { entry: CacheEntry } | { miss: 'absent' } | { miss: 'untrusted'; reason: string };

export class RegistryLayerCache {
  readonly repository: OpenedReference;

  constructor(repository: OpenedReference) {
    this.repository = repository;
  }

  /**
   * Looks the key up (one GET of its tag when absent). On a trusted entry, its blobs are copied
   * into the layout (mounted at push time when the target is the same registry) and the entry
   * returned.
   */
  async fetch(key: string, layout: OpenedReference): Promise<CacheLookup> {
    const { store, repository } = this.repository;
    let fetched;
    try {
      fetched = await store.getManifest(repository, cacheTag(key));
    } catch (error) {
      if (error instanceof OciError && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN')) return { miss: 'absent' };
      throw error;
    }
    const { manifest } = fetched;
    if (isIndex(manifest) || manifest.config.mediaType !== cacheConfigMediaType) return { miss: 'untrusted', reason: 'the tag holds something else than a restack cache entry' };
    if (manifest.annotations?.[cacheKeyAnnotation] !== key) return { miss: 'untrusted', reason: `the manifest records the key ${manifest.annotations?.[cacheKeyAnnotation] ?? 'none'}` };
    const parsed = recordSchema.safeParse(JSON.parse(Buffer.from(await store.readBlob(repository, manifest.config)).toString('utf8')));
    if (!parsed.success) return { miss: 'untrusted', reason: 'its record is not a restack cache record' };
    const record = parsed.data;
    if (record.key !== key) return { miss: 'untrusted', reason: `its record is for the key ${record.key}` };
    const listed = manifest.layers.map((layer) => layer.digest).join(' ');
    if (record.own.map((own) => own.descriptor.digest).join(' ') !== listed) return { miss: 'untrusted', reason: 'its record and its manifest list different blobs' };
    const foreign = record.own.find((own) => !Object.values(layerMediaTypes).includes(own.descriptor.mediaType));
    if (foreign !== undefined) return { miss: 'untrusted', reason: `blob ${foreign.descriptor.digest} has the media type ${foreign.descriptor.mediaType}, which restack does not write` };
    for (const own of record.own) {
      await transferBlob(layout, this.repository, own.descriptor);
      const diffId = await uncompressedDigest(await layout.store.openBlob(layout.repository, own.descriptor), own.descriptor.mediaType);
      if (diffId !== own.diffId) return { miss: 'untrusted', reason: `blob ${own.descriptor.digest} uncompresses to ${diffId}, not the diff_id ${own.diffId} its record gives` };
    }
    return { entry: record };
  }

  /** Publishes a layer built here: its blobs, the record, then the manifest under its tag. The caller treats a failure as a warning. */
  async publish(key: string, entry: CacheEntry, layout: OpenedReference): Promise<void> {
    const { store, repository } = this.repository;
    for (const own of entry.own) await transferBlob(this.repository, layout, own.descriptor);
    const recordBytes = new TextEncoder().encode(JSON.stringify({ key, layer: entry.layer, own: entry.own, labels: entry.labels }));
    const config: Descriptor = { mediaType: cacheConfigMediaType, size: recordBytes.length, digest: sha256Digest(recordBytes) };
    await store.putBlob(repository, config, recordBytes);
    const manifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config, layers: entry.own.map((own) => own.descriptor), annotations: { [cacheKeyAnnotation]: key } };
    await store.putManifest(repository, new TextEncoder().encode(JSON.stringify(manifest)), MediaType.ociManifest, cacheTag(key));
  }
}
