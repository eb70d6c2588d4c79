import { pipeline } from 'node:stream/promises';
import type { Readable } from 'node:stream';
import { createGunzip, createZstdDecompress } from 'node:zlib';
import tar from 'tar-stream';
import { layerCompression } from './mediatypes.ts';

/** A tar header's name and type (and a link's target), as written in a layer. */
export interface TarHeaderEntry {
  name: string;
  type: string;
  linkname?: string;
}

/**
 * The entries of a tar layer, read from its headers only (contents are skipped, not buffered).
 * Returns undefined for layer types that are not tar (squashfs).
 */
export async function listLayerEntries(blob: Readable, mediaType: string): Promise<TarHeaderEntry[] | undefined> {
  const compression = layerCompression(mediaType);
  if (compression === 'squashfs') {
    blob.destroy();
    return undefined;
  }
  const entries: TarHeaderEntry[] = [];
  const extract = tar.extract();
  extract.on('entry', (header, stream, next) => {
    entries.push({ name: header.name, type: header.type ?? 'file', ...(header.linkname == null ? {} : { linkname: header.linkname }) });
    stream.on('end', next);
    stream.resume();
  });
  const stages = compression === 'gzip' ? [createGunzip()] : compression === 'zstd' ? [createZstdDecompress()] : [];
  await pipeline([blob, ...stages, extract]);
  return entries;
}
