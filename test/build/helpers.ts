import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import type { LayerSource } from '../../src/build/storage/driver.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { gunzipSync, gzipSync, zstdCompressSync } from 'node:zlib';
import type { TestContext } from 'node:test';
import { extract, pack, type Header } from 'tar-stream';
import { sha256Digest } from '../../src/oci/digest.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';

/** A temp dir, traversable by mapped container ids (LXC needs that), removed after the test. */
export async function tempDir(t: TestContext, prefix = 'restack-build-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

export type TarSpec = Partial<Header> & { name: string; content?: string | Buffer };

export async function tarBytes(entries: readonly TarSpec[]): Promise<Buffer> {
  const archive = pack();
  const chunks: Buffer[] = [];
  const done = (async () => {
    for await (const chunk of archive as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
  })();
  for (const { content, ...header } of entries) {
    await new Promise<void>((resolve, reject) => {
      archive.entry({ mtime: new Date(1_600_000_000_000), ...header }, content ?? '', (error) => (error ? reject(error) : resolve()));
    });
  }
  archive.finalize();
  await done;
  return Buffer.concat(chunks);
}

export interface TestLayer {
  bytes: Buffer;
  mediaType: string;
  digest: string;
  diffId: string;
  stream(): Readable;
}

export async function tarLayer(entries: readonly TarSpec[], compression: 'none' | 'gzip' | 'zstd' = 'gzip'): Promise<TestLayer> {
  const tar = await tarBytes(entries);
  const bytes = compression === 'gzip' ? gzipSync(tar) : compression === 'zstd' ? zstdCompressSync(tar) : tar;
  const mediaType = compression === 'gzip' ? MediaType.ociLayerGzip : compression === 'zstd' ? MediaType.ociLayerZstd : MediaType.ociLayerTar;
  return { bytes, mediaType, digest: sha256Digest(bytes), diffId: sha256Digest(tar), stream: () => Readable.from([bytes]) };
}

export const busyboxPath = '/bin/busybox';
const busyboxApplets = ['sh', 'ls', 'cat', 'echo', 'mkdir', 'rm', 'touch', 'id', 'true', 'false', 'sleep', 'chmod', 'ln', 'stat'];

/** The busybox rootfs as tar entries, so tests can feed it to unpack like a base image layer. */
export function busyboxLayerEntries(busybox: Buffer): TarSpec[] {
  return [
    ...['bin', 'etc', 'dev', 'proc', 'sys', 'tmp', 'root'].map((name) => ({ name, type: 'directory' as const, mode: 0o755 })),
    { name: 'bin/busybox', mode: 0o755, content: busybox },
    ...busyboxApplets.map((applet) => ({ name: `bin/${applet}`, type: 'symlink' as const, linkname: 'busybox' })),
  ];
}

export interface ReadEntry {
  name: string;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  linkname: string | null;
  devmajor: number;
  devminor: number;
  pax: Record<string, string>;
  content: string;
}

/** The entries of a tar blob (gzip detected by magic), contents as text. */
export async function readTarEntries(blob: Buffer): Promise<ReadEntry[]> {
  const tar = blob[0] === 0x1f && blob[1] === 0x8b ? gunzipSync(blob) : blob;
  const archive = extract();
  const entries: ReadEntry[] = [];
  const reading = (async () => {
    for await (const entry of archive) {
      const chunks: Buffer[] = [];
      for await (const chunk of entry as unknown as AsyncIterable<Buffer>) chunks.push(chunk);
      const h = entry.header;
      entries.push({
        name: h.name,
        type: h.type,
        mode: h.mode,
        uid: h.uid,
        gid: h.gid,
        mtime: h.mtime.getTime() / 1000,
        linkname: h.linkname,
        devmajor: h.devmajor,
        devminor: h.devminor,
        pax: (h.pax ?? {}) as Record<string, string>,
        content: Buffer.concat(chunks).toString(),
      });
    }
  })();
  archive.end(tar);
  await reading;
  return entries;
}

export function layerSource(layer: TestLayer): LayerSource {
  return { diffId: layer.diffId, digest: layer.digest, mediaType: layer.mediaType, open: async () => layer.stream() };
}

/** Base image layer: busybox and its applets, as a registry would serve it. */
export async function busyboxLayer(): Promise<TestLayer> {
  return tarLayer(busyboxLayerEntries(await readFile(busyboxPath)));
}
