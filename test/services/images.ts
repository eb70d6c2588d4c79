/**
 * Small, deterministic test images built in memory: layers from a map of path to content, a
 * config, a manifest, an index; a writer that puts them into any Store; and a validator that
 * checks an image in a store is self-consistent (the habit of go-containerregistry's
 * `validate`). Shared by every test that needs an image.
 */
import { createGunzip, gzipSync } from 'node:zlib';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import * as tar from 'tar-stream';
import { DigestingHasher, sha256Digest } from '../../src/oci/digest.ts';
import { MediaType, layerCompression } from '../../src/oci/mediatypes.ts';
import type { Store } from '../../src/oci/store.ts';
import { readImage } from '../../src/oci/open.ts';
import type { Descriptor, ImageConfig, ImageIndex, ImageManifest, Platform } from '../../src/oci/types.ts';

export type LayerEntry =
  | string
  | Uint8Array
  | { type: 'file'; content: string | Uint8Array; mode?: number }
  | { type: 'directory'; mode?: number }
  | { type: 'symlink'; target: string };

export interface LayerOptions {
  compression?: 'gzip' | 'none';
  /** Overrides the media type (for example a Docker layer type). */
  mediaType?: string;
  /** Entry modification time in seconds; fixed so that the same files give the same bytes. */
  mtime?: number;
}

export interface BuiltLayer {
  bytes: Uint8Array;
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar. */
  diffId: string;
}

const dockerLayerTar = 'application/vnd.docker.image.rootfs.diff.tar';

function normalise(entry: LayerEntry): Exclude<LayerEntry, string | Uint8Array> {
  if (typeof entry === 'string' || entry instanceof Uint8Array) return { type: 'file', content: entry };
  return entry;
}

/** Every parent directory of the given paths that is not listed itself, so the tar is complete. */
function withParents(files: Record<string, LayerEntry>): Map<string, Exclude<LayerEntry, string | Uint8Array>> {
  const entries = new Map<string, Exclude<LayerEntry, string | Uint8Array>>();
  for (const [rawPath, entry] of Object.entries(files)) {
    const path = rawPath.replace(/^\/+/, '').replace(/\/+$/, '');
    const parts = path.split('/');
    for (let depth = 1; depth < parts.length; depth++) {
      const parent = parts.slice(0, depth).join('/');
      if (!entries.has(parent)) entries.set(parent, { type: 'directory' });
    }
    entries.set(path, normalise(entry));
  }
  return entries;
}

/** Builds a tar layer (sorted entries, owner 0:0, fixed mtime) and compresses it. */
export async function makeLayer(files: Record<string, LayerEntry>, options: LayerOptions = {}): Promise<BuiltLayer> {
  const compression = options.compression ?? 'gzip';
  const mtime = new Date((options.mtime ?? 0) * 1000);
  const pack = tar.pack();
  const collected: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of pack) collected.push(chunk as Buffer);
  })();
  const sorted = [...withParents(files)].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  for (const [name, entry] of sorted) {
    const common = { uid: 0, gid: 0, mtime, uname: '', gname: '' };
    if (entry.type === 'directory') {
      pack.entry({ ...common, name: `${name}/`, type: 'directory', mode: entry.mode ?? 0o755 });
    } else if (entry.type === 'symlink') {
      pack.entry({ ...common, name, type: 'symlink', linkname: entry.target, mode: 0o777 });
    } else {
      const content = typeof entry.content === 'string' ? Buffer.from(entry.content) : Buffer.from(entry.content);
      pack.entry({ ...common, name, type: 'file', mode: entry.mode ?? 0o644, size: content.length }, content);
    }
  }
  pack.finalize();
  await done;
  const tarBytes = Buffer.concat(collected);
  const bytes = compression === 'gzip' ? gzipSync(tarBytes, { level: 6 }) : tarBytes;
  const mediaType = options.mediaType ?? (compression === 'gzip' ? MediaType.ociLayerGzip : MediaType.ociLayerTar);
  return { bytes, descriptor: { mediaType, digest: sha256Digest(bytes), size: bytes.length }, diffId: sha256Digest(tarBytes) };
}

export interface ImageOptions {
  layers: BuiltLayer[];
  format?: 'oci' | 'docker';
  architecture?: string;
  os?: string;
  variant?: string;
  config?: NonNullable<ImageConfig['config']>;
  /** Manifest annotations (OCI only: Docker schema2 has none). */
  annotations?: Record<string, string>;
  created?: string;
}

export interface Blob {
  descriptor: Descriptor;
  bytes: Uint8Array;
}

export interface BuiltImage {
  manifest: ImageManifest;
  manifestBytes: Uint8Array;
  manifestDescriptor: Descriptor;
  config: ImageConfig;
  configDescriptor: Descriptor;
  configBytes: Uint8Array;
  layers: BuiltLayer[];
  /** Config and layers, in the order they must be written before the manifest. */
  blobs: Blob[];
}

function asDockerLayer(descriptor: Descriptor): Descriptor {
  const compression = layerCompression(descriptor.mediaType);
  if (compression === 'gzip') return { ...descriptor, mediaType: MediaType.dockerLayerGzip };
  if (compression === 'none') return { ...descriptor, mediaType: dockerLayerTar };
  throw new Error(`a Docker schema2 image cannot carry a ${descriptor.mediaType} layer`);
}

export function makeImage(options: ImageOptions): BuiltImage {
  const format = options.format ?? 'oci';
  if (format === 'docker' && options.annotations !== undefined) throw new Error('Docker schema2 manifests have no annotations');
  const config: ImageConfig = {
    ...(options.created === undefined ? {} : { created: options.created }),
    architecture: options.architecture ?? 'amd64',
    os: options.os ?? 'linux',
    ...(options.variant === undefined ? {} : { variant: options.variant }),
    config: options.config ?? {},
    rootfs: { type: 'layers', diff_ids: options.layers.map((layer) => layer.diffId) },
    history: options.layers.map((_, index) => ({ created_by: `test layer ${index}` })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDescriptor: Descriptor = {
    mediaType: format === 'oci' ? MediaType.ociConfig : MediaType.dockerConfig,
    digest: sha256Digest(configBytes),
    size: configBytes.length,
  };
  const layerDescriptors = options.layers.map((layer) => (format === 'oci' ? layer.descriptor : asDockerLayer(layer.descriptor)));
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MediaType.ociManifest : MediaType.dockerManifest,
    config: configDescriptor,
    layers: layerDescriptors,
    ...(options.annotations === undefined ? {} : { annotations: options.annotations }),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const platform: Platform = { architecture: config.architecture, os: config.os, ...(config.variant === undefined ? {} : { variant: config.variant }) };
  return {
    manifest,
    manifestBytes,
    manifestDescriptor: { mediaType: manifest.mediaType as string, digest: sha256Digest(manifestBytes), size: manifestBytes.length, platform },
    config,
    configDescriptor,
    configBytes,
    layers: options.layers,
    blobs: [
      { descriptor: configDescriptor, bytes: configBytes },
      ...options.layers.map((layer, index) => ({ descriptor: layerDescriptors[index] as Descriptor, bytes: layer.bytes })),
    ],
  };
}

export interface BuiltIndex {
  index: ImageIndex;
  bytes: Uint8Array;
  descriptor: Descriptor;
}

/** An index over images (each entry carries its image's platform) plus any extra raw entries (attestations). */
export function makeIndex(images: BuiltImage[], extra: Descriptor[] = [], format: 'oci' | 'docker' = 'oci'): BuiltIndex {
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: format === 'oci' ? MediaType.ociIndex : MediaType.dockerManifestList,
    manifests: [...images.map((image) => image.manifestDescriptor), ...extra],
  };
  const bytes = Buffer.from(JSON.stringify(index));
  return { index, bytes, descriptor: { mediaType: index.mediaType as string, digest: sha256Digest(bytes), size: bytes.length } };
}

/** Writes an image the way every writer must: blobs, then the manifest by digest, then the tag. */
export async function writeImage(store: Store, repository: string, image: BuiltImage, tag?: string): Promise<Descriptor> {
  for (const blob of image.blobs) await store.putBlob(repository, blob.descriptor, blob.bytes);
  const descriptor = await store.putManifest(repository, image.manifestBytes, image.manifestDescriptor.mediaType);
  if (tag !== undefined) await store.tag(repository, tag, descriptor);
  return descriptor;
}

export async function writeIndex(store: Store, repository: string, images: BuiltImage[], index: BuiltIndex, tag?: string): Promise<Descriptor> {
  for (const image of images) await writeImage(store, repository, image);
  const descriptor = await store.putManifest(repository, index.bytes, index.descriptor.mediaType);
  if (tag !== undefined) await store.tag(repository, tag, descriptor);
  return descriptor;
}

async function uncompressedDigest(stream: Readable, mediaType: string): Promise<string> {
  const hasher = new DigestingHasher();
  const compression = layerCompression(mediaType);
  if (compression !== 'gzip' && compression !== 'none') throw new Error(`validateImage cannot decompress ${mediaType}`);
  const stages = compression === 'gzip' ? [stream, createGunzip()] : [stream];
  await pipeline(...(stages as [Readable]), async (source: AsyncIterable<Uint8Array>) => {
    for await (const chunk of source) hasher.update(chunk);
  });
  return hasher.digest();
}

/**
 * Reads an image back through a store and checks every digest, size and diff_id against its
 * content. Returns the resolved image for further assertions.
 */
export async function validateImage(store: Store, repository: string, reference: string, platform?: Platform) {
  const image = await readImage(store, repository, reference, platform);
  const diffIds = image.config.rootfs.diff_ids;
  if (diffIds.length !== image.manifest.layers.length) {
    throw new Error(`${reference}: ${image.manifest.layers.length} layers but ${diffIds.length} diff_ids`);
  }
  for (const [index, layer] of image.manifest.layers.entries()) {
    const diffId = await uncompressedDigest(await store.openBlob(repository, layer), layer.mediaType);
    if (diffId !== diffIds[index]) throw new Error(`${reference}: layer ${index} has diff_id ${diffId}, config says ${diffIds[index]}`);
  }
  return image;
}
