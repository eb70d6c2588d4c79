import { randomBytes } from 'node:crypto';
import { closeSync, constants, createReadStream, createWriteStream, lstatSync, openSync, readSync, type Stats } from 'node:fs';
import { readlink, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { constants as zlibConstants, createGzip, createZstdCompress } from 'node:zlib';
import { pack as tarPack, type Pack } from 'tar-stream';
import { DigestingHasher } from '../oci/digest.ts';
import { MediaType } from '../oci/mediatypes.ts';
import type { Descriptor } from '../oci/types.ts';
import { changedPaths, type DiffEntry, type LayerDiff } from './diff/entries.ts';
import { BuildError } from './errors.ts';
import { hashingStage } from './hashing.ts';
import { noIdShift, type IdShift } from './idmap.ts';
import { runTool } from './tools.ts';

export type LayerFormat = 'tar' | 'tar+gzip' | 'tar+zstd' | 'squashfs';

export const layerMediaTypes: Record<LayerFormat, string> = {
  tar: MediaType.ociLayerTar,
  'tar+gzip': MediaType.ociLayerGzip,
  'tar+zstd': MediaType.ociLayerZstd,
  squashfs: MediaType.stackerSquashfs,
};

/**
 * Fixed compression settings: part of the output's identity. Changing one changes every digest
 * restack writes, so treat it like a format change. Level 6 is gzip's own default.
 */
export const gzipLevel = 6;
export const zstdLevel = 3;

export interface WriteLayerOptions {
  diff: LayerDiff;
  /** Where the blob is written, named by its digest's hex. */
  directory: string;
  format?: LayerFormat;
  /** The shift the rootfs was written with; ids are shifted back so no host id reaches the layer. */
  idShift?: IdShift;
  /** Seconds; timestamps later than this are clamped to it. Absent: every timestamp is 0. */
  sourceDateEpoch?: number;
}

export interface WrittenLayer {
  path: string;
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar; for squashfs, the blob digest (as stacker defines it). */
  diffId: string;
  /** Container paths the layer adds, changes or deletes. */
  paths: string[];
  warnings: string[];
}

/** SOURCE_DATE_EPOCH from an environment, validated; undefined when unset. */
export function sourceDateEpochFrom(env: NodeJS.ProcessEnv): number | undefined {
  const raw = env['SOURCE_DATE_EPOCH'];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) {
    throw new BuildError('LAYER_INVALID', `SOURCE_DATE_EPOCH="${raw}" is not a number of seconds`, 'set it to a Unix time, e.g. SOURCE_DATE_EPOCH=$(git log -1 --format=%ct)');
  }
  return Number(raw);
}

/** Turns a diff into a reproducible blob: same diff, options and Node version give the same bytes. */
export async function writeLayer(options: WriteLayerOptions): Promise<WrittenLayer> {
  const format = options.format ?? 'tar+gzip';
  const temporary = join(options.directory, `.tmp-${randomBytes(8).toString('hex')}`);
  const warnings: string[] = [];
  const archive = tarPack();
  const packing = packDiff(archive, options, format === 'squashfs' ? 'overlay' : 'oci', warnings).catch((error: unknown) => {
    archive.destroy(error as Error);
    throw error;
  });
  const writing = format === 'squashfs' ? writeSquashfs(archive, temporary, options) : writeTar(archive, temporary, format);
  try {
    const [{ digest, diffId, size }] = await Promise.all([writing, packing]);
    const path = join(options.directory, digest.slice('sha256:'.length));
    await rename(temporary, path);
    return { path, descriptor: { mediaType: layerMediaTypes[format], digest, size }, diffId, paths: changedPaths(options.diff), warnings };
  } catch (error) {
    archive.destroy();
    await writing.catch(() => undefined);
    await rm(temporary, { force: true });
    throw error;
  }
}

async function writeTar(archive: Pack, path: string, format: Exclude<LayerFormat, 'squashfs'>) {
  const uncompressed = new DigestingHasher();
  const compressed = new DigestingHasher();
  const stages: Transform[] = [coalescing(), hashingStage(uncompressed)];
  if (format === 'tar+gzip') stages.push(createGzip({ level: gzipLevel }));
  if (format === 'tar+zstd') stages.push(createZstdCompress({ params: { [zlibConstants.ZSTD_c_compressionLevel]: zstdLevel } }));
  stages.push(hashingStage(compressed));
  await pipeline([archive as unknown as Readable, ...stages, createWriteStream(path)]);
  return { digest: compressed.digest(), diffId: uncompressed.digest(), size: compressed.size };
}

async function writeSquashfs(archive: Pack, path: string, options: WriteLayerOptions) {
  const time = String(options.sourceDateEpoch ?? 0);
  await runTool(
    'mksquashfs',
    ['-', path, '-tar', '-noappend', '-comp', 'zstd', '-all-time', time, '-mkfs-time', time, '-root-mode', '755', '-root-uid', '0', '-root-gid', '0', '-quiet', '-no-progress'],
    { input: Readable.from(archive as unknown as AsyncIterable<Buffer>) },
  );
  const hasher = new DigestingHasher();
  for await (const chunk of createReadStream(path)) hasher.update(chunk as Buffer);
  const digest = hasher.digest();
  return { digest, diffId: digest, size: hasher.size };
}

/**
 * Whiteouts in OCI style (`.wh.` files) for tar layers; in overlayfs style (0/0 character devices,
 * `trusted.overlay.opaque` xattr) for squashfs layers, which stacker mounts as overlay lower dirs.
 */
type WhiteoutStyle = 'oci' | 'overlay';

interface EntryHeader {
  name: string;
  type: 'file' | 'link' | 'symlink' | 'directory' | 'character-device' | 'block-device' | 'fifo';
  mode: number;
  uid: number;
  gid: number;
  mtime: Date;
  size?: number;
  linkname?: string;
  devmajor?: number;
  devminor?: number;
  pax?: Record<string, string>;
}

async function packDiff(archive: Pack, options: WriteLayerOptions, style: WhiteoutStyle, warnings: string[]): Promise<void> {
  const epoch = new Date((options.sourceDateEpoch ?? 0) * 1000);
  const opaque = new Set(options.diff.entries.filter((entry) => entry.kind === 'opaque').map((entry) => entry.path));
  const firstPathOfInode = new Map<string, string>();
  for (const entry of options.diff.entries) {
    if (entry.kind === 'whiteout') {
      await addEntry(archive, whiteoutHeader(entry.path, style, epoch));
    } else if (entry.kind === 'opaque') {
      if (style === 'oci') await addEntry(archive, { name: `${entry.path}/.wh..wh..opq`, type: 'file', mode: 0, uid: 0, gid: 0, mtime: epoch, size: 0 });
    } else {
      const stat = lstatSync(entry.source);
      const header = await headerFor(entry, stat, options, firstPathOfInode, warnings);
      if (header === undefined) continue;
      if (style === 'overlay' && opaque.has(entry.path)) header.pax = { ...header.pax, 'SCHILY.xattr.trusted.overlay.opaque': 'y' };
      await addEntry(archive, header, header.type === 'file' ? entry.source : undefined);
    }
  }
  archive.finalize();
}

function whiteoutHeader(path: string, style: WhiteoutStyle, epoch: Date): EntryHeader {
  if (style === 'overlay') return { name: path, type: 'character-device', mode: 0, uid: 0, gid: 0, mtime: epoch, devmajor: 0, devminor: 0 };
  const slash = path.lastIndexOf('/');
  return { name: `${path.slice(0, slash + 1)}.wh.${path.slice(slash + 1)}`, type: 'file', mode: 0, uid: 0, gid: 0, mtime: epoch, size: 0 };
}

async function headerFor(
  entry: Extract<DiffEntry, { kind: 'add' }>,
  stat: Stats,
  options: WriteLayerOptions,
  firstPathOfInode: Map<string, string>,
  warnings: string[],
): Promise<EntryHeader | undefined> {
  const ids = options.idShift ?? noIdShift;
  const uid = stat.uid - ids.uid;
  const gid = stat.gid - ids.gid;
  if (uid < 0 || gid < 0 || uid >= ids.size || gid >= ids.size) {
    throw new BuildError(
      'ID_OUT_OF_RANGE',
      `/${entry.path} is owned by host ids ${stat.uid}:${stat.gid}, outside the build's range (${ids.uid}:${ids.gid} + ${ids.size}); it would leak a host id into the layer`,
      'files in a rootfs must be created from inside the build container, not by the host',
    );
  }
  const mtimeSeconds = Math.floor(stat.mtimeMs / 1000);
  const base = {
    mode: stat.mode & 0o7777,
    uid,
    gid,
    mtime: new Date((options.sourceDateEpoch === undefined ? 0 : Math.min(mtimeSeconds, options.sourceDateEpoch)) * 1000),
    pax: paxXattrs(entry, warnings),
  };
  if (stat.isDirectory()) return { ...base, name: `${entry.path}/`, type: 'directory' };
  if (stat.isSymbolicLink()) return { ...base, name: entry.path, type: 'symlink', linkname: await readlink(entry.source) };
  if (stat.isFile()) {
    const inode = `${stat.dev}:${stat.ino}`;
    const first = stat.nlink > 1 ? firstPathOfInode.get(inode) : undefined;
    if (first !== undefined) return { ...base, name: entry.path, type: 'link', linkname: first };
    if (stat.nlink > 1) firstPathOfInode.set(inode, entry.path);
    return { ...base, name: entry.path, type: 'file', size: stat.size };
  }
  if (stat.isCharacterDevice() || stat.isBlockDevice()) {
    return { ...base, name: entry.path, type: stat.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major(stat.rdev), devminor: minor(stat.rdev) };
  }
  if (stat.isFIFO()) return { ...base, name: entry.path, type: 'fifo' };
  warnings.push(`/${entry.path}: sockets cannot be stored in a layer; skipped`);
  return undefined;
}

function major(rdev: number): number {
  return ((rdev >>> 8) & 0xfff) | (Math.floor(rdev / 2 ** 32) & ~0xfff);
}

function minor(rdev: number): number {
  return (rdev & 0xff) | ((rdev >>> 12) & ~0xff & 0xfffff);
}

/** Text xattrs as SCHILY.xattr.* PAX records, sorted; tar-stream writes PAX values as UTF-8, so binary values are left out. */
function paxXattrs(entry: Extract<DiffEntry, { kind: 'add' }>, warnings: string[]): Record<string, string> | undefined {
  const pax: Record<string, string> = {};
  for (const name of [...entry.xattrs.keys()].sort()) {
    const value = entry.xattrs.get(name) as Buffer;
    const text = value.toString('utf8');
    if (Buffer.from(text, 'utf8').equals(value) && !text.includes('\n')) pax[`SCHILY.xattr.${name}`] = text;
    else warnings.push(`/${entry.path}: xattr ${name} has a binary value and was left out of the layer`);
  }
  return Object.keys(pax).length === 0 ? undefined : pax;
}

/**
 * File content is read with synchronous reads of up to 1 MiB: an asynchronous open/read/close
 * costs three thread-pool round trips per file, which dominated the time for trees of small
 * files, while compression keeps the thread pool busy. Memory stays bounded: the pack stream's
 * backpressure is honoured between reads.
 */
async function addEntry(archive: Pack, header: EntryHeader, contentFrom?: string): Promise<void> {
  if (contentFrom === undefined) {
    await new Promise<void>((resolve, reject) => archive.entry(header, noContent, (error) => (error ? reject(error) : resolve())));
    return;
  }
  let sink: ReturnType<Pack['entry']> | undefined;
  const written = new Promise<void>((resolve, reject) => {
    sink = archive.entry(header, (error) => (error ? reject(error) : resolve()));
  });
  await copyInto(sink as ReturnType<Pack['entry']>, contentFrom, header.size ?? 0);
  await written;
}

const readChunk = 1 << 20;
const noContent = Buffer.alloc(0);

async function copyInto(sink: ReturnType<Pack['entry']>, path: string, size: number): Promise<void> {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    let remaining = size;
    while (remaining > 0) {
      const buffer = Buffer.allocUnsafe(Math.min(remaining, readChunk));
      const read = readSync(fd, buffer, 0, buffer.length, null);
      if (read === 0) throw new BuildError('LAYER_INVALID', `${path} shrank while it was being written into the layer`);
      remaining -= read;
      if (!sink.write(read === buffer.length ? buffer : buffer.subarray(0, read))) await new Promise<void>((resolve) => sink.once('drain', () => resolve()));
    }
  } finally {
    closeSync(fd);
  }
  // streamx's end() takes an optional last chunk; its typing insists on one
  sink.end(undefined);
}

/** Joins the many small writes of a tar stream into large ones: each write to zlib is a thread-pool job. */
function coalescing(target = readChunk): Transform {
  let pending: Buffer[] = [];
  let length = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      pending.push(chunk);
      length += chunk.length;
      if (length < target) return callback();
      const joined = Buffer.concat(pending, length);
      pending = [];
      length = 0;
      callback(null, joined);
    },
    flush(callback) {
      callback(null, length === 0 ? undefined : Buffer.concat(pending, length));
    },
  });
}
