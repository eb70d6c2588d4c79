import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, copyFile, cp, lchown, lstat, mkdir, readdir, readlink, realpath, rename, rm, stat, symlink } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { IdShift } from '../../build/idmap.ts';
import { RootfsResolver, splitEntryPath } from '../../build/rootfs-path.ts';
import { LayerBuildError } from './errors.ts';
import { importName, importTarget, type ImportSpec } from './import-plan.ts';

export interface ImportContext {
  /** The layer being built. */
  layer: string;
  /** Where downloads and files taken from other layers are kept: `<roots-dir>/build`. */
  workDir: string;
  /** Copies `path` of an earlier layer's image into `into`; answers the host path of the copy. */
  grab: (layer: string, path: string, into: string) => Promise<string>;
  /** Local imports must resolve (symlinks followed) inside this directory: the recipe's, in a confined build. */
  confineTo?: string;
}

/**
 * Refuses a local path of a confined build that resolves outside `dir`, a symlink leading out
 * included; a path that does not exist is left to the caller's own error.
 */
export async function checkInside(layer: string, field: string, written: string, hostPath: string, dir: string): Promise<void> {
  const real = await realpath(hostPath).catch(() => undefined);
  if (real === undefined) return;
  const inside = relative(await realpath(dir), real);
  if (inside === '' || (!inside.startsWith(`..${sep}`) && inside !== '..' && !inside.startsWith(sep))) return;
  throw new LayerBuildError(
    'HOST_PATH_REFUSED',
    layer,
    `layer ${layer}: ${layer}.${field} "${written}" leads out of the recipe's directory (it resolves to ${real})`,
    'this build reads local files only inside the recipe\'s directory: import by URL (https://...) or from another layer (stacker://LAYER/PATH)',
  );
}

/** An import made available on the host, its content checked. */
export interface AcquiredImport {
  spec: ImportSpec;
  hostPath: string;
  isDirectory: boolean;
  /** sha256 of a file, or of a directory's listing and contents: the cache key's view of it. */
  contentHash: string;
}

async function fileHash(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

/** A directory's identity: each entry's path, type, mode and content (or link target), in sorted order. */
async function treeHash(root: string): Promise<string> {
  const hash = createHash('sha256');
  const visit = async (relative: string): Promise<void> => {
    for (const name of (await readdir(join(root, relative))).sort()) {
      const path = relative === '' ? name : `${relative}/${name}`;
      const info = await lstat(join(root, path));
      const mode = (info.mode & 0o7777).toString(8);
      if (info.isDirectory()) {
        hash.update(`d ${mode} ${path}\n`);
        await visit(path);
      } else if (info.isSymbolicLink()) {
        hash.update(`l ${path} ${await readlink(join(root, path))}\n`);
      } else {
        hash.update(`f ${mode} ${path} ${await fileHash(join(root, path))}\n`);
      }
    }
  };
  await visit('');
  return hash.digest('hex');
}

function describe(context: ImportContext, spec: ImportSpec): string {
  return `layer ${context.layer}: import "${spec.written}" (${context.layer}.${spec.field})`;
}

/** Fetches an http(s) import into the download cache; a cached copy with the expected hash is reused. */
async function download(context: ImportContext, spec: ImportSpec, url: string): Promise<string> {
  const dir = join(context.workDir, 'downloads', createHash('sha256').update(url).digest('hex').slice(0, 16));
  const path = join(dir, importName(spec.written));
  if (spec.hash !== undefined && (await fileHash(path).catch(() => undefined)) === spec.hash) return path;
  await mkdir(dir, { recursive: true });
  let response: Response;
  try {
    response = await fetch(url);
  } catch (error) {
    throw new LayerBuildError('IMPORT_DOWNLOAD_FAILED', context.layer, `${describe(context, spec)}: cannot download ${url}: ${(error as Error).message}`, 'check the URL and that the server is reachable from the build machine');
  }
  if (!response.ok || response.body === null) {
    throw new LayerBuildError('IMPORT_DOWNLOAD_FAILED', context.layer, `${describe(context, spec)}: ${url} answered ${response.status} ${response.statusText}`, 'check the URL in the recipe');
  }
  const temporary = `${path}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await pipeline(Readable.fromWeb(response.body), createWriteStream(temporary));
    await rename(temporary, path);
  } finally {
    await rm(temporary, { force: true });
  }
  return path;
}

async function locate(context: ImportContext, spec: ImportSpec, slot: string): Promise<string> {
  switch (spec.source.kind) {
    case 'local':
      return spec.source.path;
    case 'http':
      return download(context, spec, spec.source.url);
    case 'stacker': {
      const into = join(context.workDir, 'grabs', context.layer, slot);
      await rm(into, { recursive: true, force: true });
      await mkdir(into, { recursive: true });
      return context.grab(spec.source.layer, spec.source.path, into);
    }
  }
}

/** Makes one import available on the host and checks it: it exists, and its sha256 is the recipe's `hash`. */
export async function acquireImport(context: ImportContext, spec: ImportSpec, slot: string): Promise<AcquiredImport> {
  const hostPath = await locate(context, spec, slot);
  if (context.confineTo !== undefined && spec.source.kind === 'local') await checkInside(context.layer, spec.field, spec.written, hostPath, context.confineTo);
  const info = await stat(hostPath).catch(() => undefined);
  if (info === undefined) {
    const where = spec.source.kind === 'local' ? ` (${hostPath})` : '';
    throw new LayerBuildError(
      'IMPORT_MISSING',
      context.layer,
      `${describe(context, spec)}: it does not exist${where}`,
      spec.source.kind === 'stacker'
        ? `make sure layer ${spec.source.layer} creates ${spec.source.path}, or fix the path in ${context.layer}.${spec.field}`
        : `create it, or fix the path in ${context.layer}.${spec.field} (local paths are relative to the recipe's directory)`,
    );
  }
  const isDirectory = info.isDirectory();
  if (!isDirectory && spec.field.startsWith('overlay_dirs.')) {
    throw new LayerBuildError('IMPORT_INVALID', context.layer, `${describe(context, spec)} is not a directory`, `overlay_dirs takes directories; import a single file with imports: [{path, dest}]`);
  }
  if (isDirectory && spec.hash !== undefined) {
    throw new LayerBuildError('IMPORT_INVALID', context.layer, `${describe(context, spec)} is a directory; a hash can only be checked for a file`, `remove hash from ${context.layer}.${spec.field}`);
  }
  const contentHash = isDirectory ? await treeHash(hostPath) : await fileHash(hostPath);
  if (spec.hash !== undefined && spec.hash !== contentHash) {
    throw new LayerBuildError(
      'IMPORT_HASH_MISMATCH',
      context.layer,
      `${describe(context, spec)}: its sha256 is ${contentHash}, but the recipe expects ${spec.hash}`,
      `if the new content is intended, set hash: ${contentHash} in ${context.layer}.${spec.field}; otherwise restore the file`,
    );
  }
  return { spec, hostPath, isDirectory, contentHash };
}

async function chownTree(path: string, ids: IdShift): Promise<void> {
  await lchown(path, ids.uid, ids.gid);
  if (!(await lstat(path)).isDirectory()) return;
  for (const name of await readdir(path)) await chownTree(join(path, name), ids);
}

/**
 * Copies the imports without `dest` into `dir`, each under its own name, owned by the container's
 * root so that it can read them whatever their modes; `dir` is mounted read-only during `run`.
 */
export async function stageImports(layer: string, imports: readonly AcquiredImport[], dir: string, ids: IdShift): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o755);
  const seen = new Map<string, string>();
  for (const item of imports) {
    if (item.spec.dest !== undefined) continue;
    const name = importName(item.spec.written);
    const earlier = seen.get(name);
    if (earlier !== undefined) {
      throw new LayerBuildError('IMPORT_INVALID', layer, `layer ${layer}: imports "${earlier}" and "${item.spec.written}" would both be /stacker/imports/${name}`, 'import one of them with a dest, or rename one');
    }
    seen.set(name, item.spec.written);
    await cp(item.hostPath, join(dir, name), { recursive: true, verbatimSymlinks: true });
    await chownTree(join(dir, name), ids);
  }
}

/**
 * Copies the imports with `dest` into the working rootfs (see importTarget), owned by the
 * import's uid/gid (container ids, default 0) and with its mode (default: the source file's).
 * Paths are resolved inside the rootfs: symlinks never lead out of it.
 */
export async function placeDestImports(layer: string, imports: readonly AcquiredImport[], rootfs: string, ids: IdShift): Promise<void> {
  const resolver = new RootfsResolver(rootfs, {
    createDirectory: async (path) => {
      await mkdir(path);
      await chmod(path, 0o755);
      await lchown(path, ids.uid, ids.gid);
    },
  });
  for (const item of imports) {
    const { spec } = item;
    if (spec.dest === undefined) continue;
    const uid = spec.uid ?? 0;
    const gid = spec.gid ?? 0;
    if (uid >= ids.size || gid >= ids.size) {
      throw new LayerBuildError('IMPORT_INVALID', layer, `layer ${layer}: import "${spec.written}" asks for owner ${uid}:${gid}, outside the build's ${ids.size} ids`, `use ids below ${ids.size}`);
    }
    const owner = { uid: uid + ids.uid, gid: gid + ids.gid };
    const target = importTarget(spec.written, spec.dest, item.isDirectory);
    const what = `layer ${layer}: import "${spec.written}" to ${target}`;
    const copyEntry = async (source: string, components: string[]): Promise<void> => {
      const info = await lstat(source);
      if (info.isDirectory()) {
        // an existing directory keeps its mode and owner; one the import creates takes the source's mode
        const existing = await resolver.directory(components, what, false);
        const host = existing ?? ((await resolver.directory(components, what, true)) as string);
        if (existing === undefined) {
          await chmod(host, info.mode & 0o7777);
          await lchown(host, owner.uid, owner.gid);
        }
        for (const name of (await readdir(source)).sort()) await copyEntry(join(source, name), [...components, name]);
        return;
      }
      const host = (await resolver.entry(components, what, true)) as string;
      const existing = await lstat(host).catch(() => undefined);
      if (existing?.isDirectory()) {
        throw new LayerBuildError('IMPORT_INVALID', layer, `${what}: /${components.join('/')} is a directory in the image`, `end dest with / to copy into that directory (${spec.dest}/)`);
      }
      if (existing !== undefined) await rm(host);
      if (info.isSymbolicLink()) {
        await symlink(await readlink(source), host);
      } else {
        await copyFile(source, host);
        await chmod(host, spec.mode ?? info.mode & 0o7777);
      }
      await lchown(host, owner.uid, owner.gid);
    };
    await copyEntry(item.hostPath, splitEntryPath(target));
  }
}
