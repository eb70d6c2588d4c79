import { closeSync, constants, fchmodSync, fchownSync, futimesSync, lstatSync, openSync, readFileSync, writeSync, type Stats } from 'node:fs';
import { chmod, copyFile, lchown, link, lstat, lutimes, mkdir, readdir, rm, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, type Header } from 'tar-stream';
import { DigestingHasher } from '../oci/digest.ts';
import { decompressorFor } from './compression.ts';
import { BuildError } from './errors.ts';
import { hashingStage } from './hashing.ts';
import { isInitialUserNamespace, noIdShift, type IdShift } from './idmap.ts';
import { RootfsResolver, hostile, splitEntryPath } from './rootfs-path.ts';
import { isPermissionFailure, makeNode, makeOverlayWhiteout } from './special-files.ts';
import { writeXattrs, xattrNameProblem } from './xattr.ts';

/**
 * How OCI whiteouts are handled.
 * `apply`: the root holds the whole image so far; `.wh.x` deletes x, `.wh..wh..opq` empties the
 * directory of what lower layers put there (btrfs snapshots, plain directories).
 * `overlay`: the root holds this layer alone, to be an overlayfs lower dir; whiteouts become char 0/0
 * nodes and opaque directories get the `<prefix>.overlay.opaque=y` xattr.
 */
export type WhiteoutMode = 'apply' | 'overlay';

export interface UnpackOptions {
  /** The directory the layer is applied onto; it must exist. */
  root: string;
  mediaType: string;
  /** The blob digest, named in every error. */
  digest: string;
  /** When given, the uncompressed stream must hash to it (the image config's diff_id). */
  expectedDiffId?: string;
  /** Host id = container id + shift; ids at or above `size` are refused. Default: no shift. */
  idShift?: IdShift;
  whiteouts?: WhiteoutMode;
  /** The overlayfs xattr namespace of the mount that will use this layer (`userxattr` means `user`). */
  overlayXattrPrefix?: 'user' | 'trusted';
  /** In overlay mode: the layer dirs below this one, topmost first, where hard-link targets may live. */
  lowerRoots?: readonly string[];
}

export interface UnpackSummary {
  digest: string;
  /** sha256 of the uncompressed tar stream. */
  diffId: string;
  entries: number;
  /** Bytes of regular-file content written. */
  bytes: number;
  /** Container paths (no leading slash) of every non-directory the layer created or replaced. */
  written: string[];
  directories: string[];
  whiteouts: string[];
  opaqueDirectories: string[];
  /** overlay mode: hard links to files of lower layers, written as copies; the unpacked tree then depends on those layers. */
  copiedFromLower: string[];
  warnings: string[];
}

const opaqueMarker = '.wh..wh..opq';
const whiteoutPrefix = '.wh.';
const xattrPaxPrefix = 'SCHILY.xattr.';
const overlayPrivateXattr = /^(trusted|user)\.overlay\./;

let userNamespaced: boolean | undefined;
function inUserNamespace(): boolean {
  userNamespaced ??= !isInitialUserNamespace(readFileSync('/proc/self/uid_map', 'utf8'));
  return userNamespaced;
}

/**
 * Why an image's xattr is not set, or undefined when it is. Allowed: `user.*`, what an
 * unprivileged user may set on its own files and what applications in images carry; and
 * `security.capability` (file capabilities, such as ping's cap_net_raw) only when unpacking inside
 * a user namespace, where the kernel stores it scoped to that namespace's root (a v3 capability)
 * so it grants nothing on the host. Written from the initial namespace it would be a host-wide
 * capability on a file the image's author chose. Refused: `trusted.*` (needs CAP_SYS_ADMIN on
 * the host, and is overlayfs's own state: a forged redirect or whiteout), other `security.*`
 * (SELinux, IMA and EVM labels are the host's policy, not the image's) and `system.posix_acl_*`
 * (ACL entries name ids that the build's id shift does not translate).
 */
export function refusedXattr(name: string, userNamespace: boolean): string | undefined {
  if (overlayPrivateXattr.test(name)) return 'is overlayfs-private';
  if (name.startsWith('user.')) return undefined;
  if (name === 'security.capability') return userNamespace ? undefined : 'is a file capability, kept only when the build runs in a user namespace';
  return 'is outside the namespaces an image may set (user.*, security.capability)';
}

interface DeferredXattr {
  components: string[];
  hostPath: string;
  name: string;
  value: Buffer;
}

interface DeferredDirectory {
  components: string[];
  hostPath: string;
  mode: number;
  mtime: Date;
}

/** Applies one layer blob to a rootfs directory; see WhiteoutMode and rootfs-path.ts for the rules. */
export async function unpackLayer(blob: Readable, options: UnpackOptions): Promise<UnpackSummary> {
  const unpacker = new LayerUnpacker(options);
  const hasher = new DigestingHasher();
  const extract = tarExtract();
  const piping = pipeline(blob, decompressorFor(options.mediaType, options.digest), hashingStage(hasher), extract);
  piping.catch(() => undefined);
  try {
    for await (const entry of extract) {
      await unpacker.apply(entry.header, entry as unknown as AsyncIterable<Buffer>);
      entry.resume();
    }
    await piping;
  } catch (error) {
    extract.destroy();
    if (error instanceof BuildError) throw error;
    throw new BuildError('UNPACK_FAILED', `layer ${options.digest}: ${(error as Error).message}`, undefined, { cause: error });
  }
  await unpacker.finish();
  const diffId = hasher.digest();
  if (options.expectedDiffId !== undefined && diffId !== options.expectedDiffId) {
    throw new BuildError(
      'DIFF_ID_MISMATCH',
      `layer ${options.digest}: uncompressed content hashes to ${diffId}, but the image config says ${options.expectedDiffId}`,
      'the blob or the image config is corrupt; pull the image again',
    );
  }
  return { ...unpacker.summary, diffId };
}

class LayerUnpacker {
  readonly summary: Omit<UnpackSummary, 'diffId'>;
  readonly #options: UnpackOptions;
  readonly #ids: IdShift;
  readonly #mode: WhiteoutMode;
  readonly #resolver: RootfsResolver;
  readonly #writtenByLayer = new Set<string>();
  readonly #xattrs: DeferredXattr[] = [];
  readonly #directories: DeferredDirectory[] = [];

  constructor(options: UnpackOptions) {
    this.#options = options;
    this.#ids = options.idShift ?? noIdShift;
    this.#mode = options.whiteouts ?? 'apply';
    this.#resolver = new RootfsResolver(options.root, {
      createDirectory: async (hostPath) => {
        await mkdir(hostPath, { mode: 0o755 });
        await lchown(hostPath, this.#ids.uid, this.#ids.gid);
      },
    });
    this.summary = { digest: options.digest, entries: 0, bytes: 0, written: [], directories: [], whiteouts: [], opaqueDirectories: [], copiedFromLower: [], warnings: [] };
  }

  async apply(header: Header, body: AsyncIterable<Buffer>): Promise<void> {
    this.summary.entries++;
    try {
      await this.#applyEntry(header, body);
    } catch (error) {
      const message = `layer ${this.#options.digest}: entry "${header.name}": ${(error as Error).message}`;
      if (error instanceof BuildError) throw new BuildError(error.code, message, error.hint, { cause: error });
      throw new BuildError('UNPACK_FAILED', message, undefined, { cause: error });
    }
  }

  async #applyEntry(header: Header, body: AsyncIterable<Buffer>): Promise<void> {
    const components = splitEntryPath(header.name);
    const path = components.join('/');
    const base = components[components.length - 1];
    if (base === opaqueMarker) return this.#opaque(components.slice(0, -1));
    if (base?.startsWith(whiteoutPrefix)) return this.#whiteout([...components.slice(0, -1), base.slice(whiteoutPrefix.length)]);
    if (components.length === 0 && header.type !== 'directory') throw hostile(`a ${header.type} entry cannot replace the rootfs itself`);

    const what = `/${path}`;
    const hostPath = await this.#write(components, header, body, what);
    if (hostPath === undefined) return;
    this.#writtenByLayer.add(path);
    (header.type === 'directory' ? this.summary.directories : this.summary.written).push(path);
    this.#collectXattrs(components, hostPath, header, what);
  }

  /** Writes one entry; answers its host path, or undefined when it was skipped. */
  async #write(components: string[], header: Header, body: AsyncIterable<Buffer>, what: string): Promise<string | undefined> {
    switch (header.type) {
      case 'directory':
        return this.#directory(components, header, what);
      case 'file':
      case 'contiguous-file':
        return this.#file(components, header, body, what);
      case 'symlink':
        return this.#symlink(components, header, what);
      case 'link':
        return this.#hardLink(components, header, what);
      case 'character-device':
      case 'block-device':
      case 'fifo':
        return this.#node(components, header, what);
      default:
        this.summary.warnings.push(`${what}: ${header.type ?? 'unknown'} entry skipped`);
        return undefined;
    }
  }

  #owner(header: Header, what: string): { uid: number; gid: number } {
    const uid = header.uid ?? 0;
    const gid = header.gid ?? 0;
    if (uid >= this.#ids.size || gid >= this.#ids.size) {
      throw new BuildError(
        'ID_OUT_OF_RANGE',
        `${what} is owned by ${uid}:${gid}, outside the ${this.#ids.size} ids this build maps`,
        'give the build a larger subordinate id range (/etc/subuid, /etc/subgid) or fix the layer',
      );
    }
    return { uid: uid + this.#ids.uid, gid: gid + this.#ids.gid };
  }

  async #target(components: string[], what: string): Promise<string> {
    return (await this.#resolver.entry(components, what)) as string;
  }

  /** Removes whatever is at hostPath (never following it); directories are kept when asked. */
  async #clear(hostPath: string, keepDirectory: boolean): Promise<Stats | undefined> {
    const existing = lstatSync(hostPath, { throwIfNoEntry: false });
    if (existing === undefined) return undefined;
    if (existing.isDirectory() && keepDirectory) return existing;
    await rm(hostPath, { recursive: true, force: true });
    if (existing.isDirectory() || existing.isSymbolicLink()) this.#resolver.invalidate();
    return undefined;
  }

  async #directory(components: string[], header: Header, what: string): Promise<string> {
    const hostPath = await this.#target(components, what);
    if ((await this.#clear(hostPath, true)) === undefined) await mkdir(hostPath, { mode: 0o700 });
    const { uid, gid } = this.#owner(header, what);
    await lchown(hostPath, uid, gid);
    this.#directories.push({ components, hostPath, mode: (header.mode ?? 0o755) & 0o7777, mtime: header.mtime ?? new Date(0) });
    return hostPath;
  }

  /**
   * Regular files use synchronous calls: each asynchronous open, write, chown, chmod, utimes and
   * close is a thread-pool round trip, which dominated unpacking trees of small files while the
   * thread pool is busy decompressing.
   */
  async #file(components: string[], header: Header, body: AsyncIterable<Buffer>, what: string): Promise<string> {
    const hostPath = await this.#target(components, what);
    await this.#clear(hostPath, false);
    const { uid, gid } = this.#owner(header, what);
    const fd = openSync(hostPath, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
    try {
      for await (const chunk of body) {
        for (let offset = 0; offset < chunk.length; ) offset += writeSync(fd, chunk, offset);
        this.summary.bytes += chunk.length;
      }
      fchownSync(fd, uid, gid);
      fchmodSync(fd, (header.mode ?? 0o644) & 0o7777);
      const mtime = header.mtime ?? new Date(0);
      futimesSync(fd, mtime, mtime);
    } finally {
      closeSync(fd);
    }
    return hostPath;
  }

  async #symlink(components: string[], header: Header, what: string): Promise<string> {
    const hostPath = await this.#target(components, what);
    await this.#clear(hostPath, false);
    await symlink(header.linkname ?? '', hostPath);
    const { uid, gid } = this.#owner(header, what);
    await lchown(hostPath, uid, gid);
    const mtime = header.mtime ?? new Date(0);
    await lutimes(hostPath, mtime, mtime);
    return hostPath;
  }

  async #hardLink(components: string[], header: Header, what: string): Promise<string> {
    const targetComponents = splitEntryPath(header.linkname ?? '');
    const linkWhat = `hard link target /${targetComponents.join('/')}`;
    const hostPath = await this.#target(components, what);
    const source = await this.#resolver.entry(targetComponents, linkWhat, false);
    const sourceStat = source === undefined ? undefined : await lstat(source).catch(() => undefined);
    if (source !== undefined && sourceStat !== undefined) {
      if (sourceStat.isDirectory()) throw new BuildError('LAYER_INVALID', `${linkWhat} is a directory`);
      if (source === hostPath) return hostPath;
      await this.#clear(hostPath, false);
      await link(source, hostPath);
      return hostPath;
    }
    if (this.#mode === 'overlay' && (await this.#copyFromLower(targetComponents, hostPath, linkWhat))) {
      this.summary.copiedFromLower.push(components.join('/'));
      return hostPath;
    }
    throw new BuildError('LAYER_INVALID', `${linkWhat} does not exist in the rootfs`, 'a hard link must point to a file of this layer or a layer below');
  }

  /** overlay mode: a link to a file of a lower layer becomes a copy, as overlayfs copy-up would make it. */
  async #copyFromLower(targetComponents: string[], hostPath: string, what: string): Promise<boolean> {
    for (const lower of this.#options.lowerRoots ?? []) {
      const source = await new RootfsResolver(lower).entry(targetComponents, what, false);
      const stat = source === undefined ? undefined : await lstat(source).catch(() => undefined);
      if (source === undefined || stat === undefined || !stat.isFile()) continue;
      await this.#clear(hostPath, false);
      await copyFile(source, hostPath, constants.COPYFILE_EXCL);
      await lchown(hostPath, stat.uid, stat.gid);
      await chmod(hostPath, stat.mode & 0o7777);
      await utimes(hostPath, stat.atime, stat.mtime);
      return true;
    }
    return false;
  }

  async #node(components: string[], header: Header, what: string): Promise<string | undefined> {
    const hostPath = await this.#target(components, what);
    await this.#clear(hostPath, false);
    const kind = header.type as 'character-device' | 'block-device' | 'fifo';
    try {
      await makeNode(hostPath, kind, header.devmajor ?? 0, header.devminor ?? 0);
    } catch (error) {
      if (!isPermissionFailure(error)) throw error;
      this.summary.warnings.push(`${what}: ${kind} ${header.devmajor ?? 0}:${header.devminor ?? 0} skipped: this user may not create device nodes`);
      return undefined;
    }
    const { uid, gid } = this.#owner(header, what);
    await lchown(hostPath, uid, gid);
    await chmod(hostPath, (header.mode ?? 0o600) & 0o7777);
    const mtime = header.mtime ?? new Date(0);
    await lutimes(hostPath, mtime, mtime);
    return hostPath;
  }

  async #whiteout(components: string[]): Promise<void> {
    const path = components.join('/');
    const what = `whiteout of /${path}`;
    if (components.length === 0) throw hostile(`${what}: the rootfs itself cannot be deleted`);
    if (this.#mode === 'apply') {
      const hostPath = await this.#resolver.entry(components, what, false);
      if (hostPath !== undefined) await this.#clear(hostPath, false);
    } else {
      const hostPath = await this.#target(components, what);
      await this.#clear(hostPath, false);
      await makeOverlayWhiteout(hostPath);
    }
    this.summary.whiteouts.push(path);
  }

  async #opaque(components: string[]): Promise<void> {
    const path = components.join('/');
    const what = `opaque directory /${path}`;
    const hostPath = (await this.#resolver.directory(components, what)) as string;
    if (this.#mode === 'apply') {
      await this.#removeLowerEntries(hostPath, path);
    } else {
      const prefix = this.#options.overlayXattrPrefix ?? 'user';
      this.#xattrs.push({ components, hostPath, name: `${prefix}.overlay.opaque`, value: Buffer.from('y') });
    }
    this.summary.opaqueDirectories.push(path);
  }

  /** Empties a directory of what lower layers put there, keeping what this layer wrote so far. */
  async #removeLowerEntries(hostPath: string, path: string): Promise<void> {
    for (const child of await readdir(hostPath, { withFileTypes: true })) {
      const childPath = path === '' ? child.name : `${path}/${child.name}`;
      const childHost = join(hostPath, child.name);
      if (!this.#writtenByLayer.has(childPath)) {
        await rm(childHost, { recursive: true, force: true });
        this.#resolver.invalidate();
      } else if (child.isDirectory()) {
        await this.#removeLowerEntries(childHost, childPath);
      }
    }
  }

  #collectXattrs(components: string[], hostPath: string, header: Header, what: string): void {
    for (const [key, value] of Object.entries((header.pax ?? {}) as Record<string, string>)) {
      if (!key.startsWith(xattrPaxPrefix)) continue;
      const name = key.slice(xattrPaxPrefix.length);
      const malformed = xattrNameProblem(name);
      if (malformed !== undefined) throw hostile(`xattr name ${JSON.stringify(name)} ${malformed}`);
      const refused = refusedXattr(name, inUserNamespace());
      if (refused !== undefined) {
        this.summary.warnings.push(`${what}: xattr ${name} ignored: it ${refused}`);
      } else if (value.includes('\uFFFD')) {
        this.summary.warnings.push(`${what}: xattr ${name} has a binary value, which tar-stream's PAX decoding cannot keep; skipped`);
      } else {
        this.#xattrs.push({ components, hostPath, name, value: Buffer.from(value, 'utf8') });
      }
    }
  }

  /**
   * xattrs and directory modes and times are applied last (writing children changes a directory's
   * mtime). Each path is resolved again first: a later entry may have replaced a parent with a
   * symlink, and a stale host path must never be written through.
   */
  async finish(): Promise<void> {
    const records = [];
    for (const xattr of this.#xattrs) {
      const hostPath = await this.#stillThere(xattr.components, xattr.hostPath);
      if (hostPath !== undefined) records.push({ path: hostPath, name: xattr.name, value: xattr.value });
    }
    await writeXattrs(records);
    for (const directory of this.#directories.reverse()) {
      const hostPath = await this.#stillThere(directory.components, directory.hostPath);
      if (hostPath === undefined || !(await lstat(hostPath)).isDirectory()) continue;
      await chmod(hostPath, directory.mode);
      await utimes(hostPath, directory.mtime, directory.mtime);
    }
  }

  async #stillThere(components: string[], recorded: string): Promise<string | undefined> {
    const hostPath = await this.#resolver.entry(components, `/${components.join('/')}`, false);
    if (hostPath === undefined || hostPath !== recorded) return undefined;
    return (await lstat(hostPath).catch(() => undefined)) === undefined ? undefined : hostPath;
  }
}
