import { lstat, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { BuildError } from './errors.ts';

/**
 * Paths inside a rootfs that a layer may name, resolved without ever leaving the rootfs.
 *
 * The rule (same as the kernel would apply inside the container, plus one refusal):
 * - an entry name is relative to the rootfs; a leading `/` or `./` is dropped; a `..` component is
 *   refused, since no tool writes one and it only serves to climb out;
 * - a symlink met as a parent component is followed as the container would see it: an absolute
 *   target starts again at the rootfs, never at the host's `/` (so `/bin -> usr/bin` images work);
 * - a symlink whose target climbs above the rootfs (`../../..`) has no meaning inside the
 *   container and is refused as hostile;
 * - the last component is never followed: entries replace what is there.
 */

const maxSymlinkHops = 40;

export function hostile(message: string): BuildError {
  return new BuildError('LAYER_HOSTILE', message, 'the layer is corrupt or malicious; nothing outside the rootfs was touched');
}

/** Splits a tar entry name into components; [] is the rootfs itself. */
export function splitEntryPath(name: string): string[] {
  const components = name.split('/').filter((c) => c !== '' && c !== '.');
  if (components.includes('..')) throw hostile(`path "${name}" contains "..", which could escape the rootfs`);
  return components;
}

export interface ResolveOptions {
  /** Creates a missing parent directory (with the layer's idea of ownership); without it nothing is created. */
  createDirectory?: (hostPath: string) => Promise<void>;
}

/** Resolves container paths to host paths inside one rootfs; caches directories already proven real. */
export class RootfsResolver {
  readonly root: string;
  readonly #createDirectory: ResolveOptions['createDirectory'];
  readonly #directories = new Map<string, string>();

  constructor(root: string, options: ResolveOptions = {}) {
    this.root = root;
    this.#createDirectory = options.createDirectory;
  }

  /** Forget cached resolutions: call after removing or replacing a directory or symlink. */
  invalidate(): void {
    this.#directories.clear();
  }

  /**
   * The host path of the directory named by `components`, following symlinks within the rootfs.
   * Missing directories are created when `create` is set, else the answer is undefined.
   */
  async directory(components: readonly string[], what: string, create = true): Promise<string | undefined> {
    const key = components.join('/');
    const cached = this.#directories.get(key);
    if (cached !== undefined) return cached;
    const resolved: string[] = [];
    const pending = [...components];
    let hops = 0;
    while (pending.length > 0) {
      const component = pending.shift() as string;
      if (component === '' || component === '.') continue;
      if (component === '..') {
        if (resolved.length === 0) throw hostile(`${what}: a symlink on the way climbs above the rootfs`);
        resolved.pop();
        continue;
      }
      const hostPath = join(this.root, ...resolved, component);
      const stat = await lstat(hostPath).catch((error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      });
      if (stat === undefined) {
        if (!create || this.#createDirectory === undefined) return undefined;
        await this.#createDirectory(hostPath);
      } else if (stat.isSymbolicLink()) {
        if (++hops > maxSymlinkHops) throw hostile(`${what}: too many levels of symlinks`);
        const target = await readlink(hostPath);
        if (target.startsWith('/')) resolved.length = 0;
        pending.unshift(...target.split('/'));
        continue;
      } else if (!stat.isDirectory()) {
        throw new BuildError('LAYER_INVALID', `${what}: /${[...resolved, component].join('/')} is not a directory`);
      }
      resolved.push(component);
    }
    const result = join(this.root, ...resolved);
    this.#directories.set(key, result);
    return result;
  }

  /**
   * The host path for an entry: its parent resolved, its last component kept as is (never followed).
   * Undefined when the parent is missing and `create` is off.
   */
  async entry(components: readonly string[], what: string, create = true): Promise<string | undefined> {
    if (components.length === 0) return this.root;
    const parent = await this.directory(components.slice(0, -1), what, create);
    return parent === undefined ? undefined : join(parent, components[components.length - 1] as string);
  }

  /** Follows the path to what it finally names, symlinks included, as the container would; undefined if missing. */
  async target(components: readonly string[], what: string): Promise<string | undefined> {
    let current = [...components];
    for (let hops = 0; hops <= maxSymlinkHops; hops++) {
      const hostPath = await this.entry(current, what, false);
      const stat = hostPath === undefined ? undefined : await lstat(hostPath).catch(() => undefined);
      if (hostPath === undefined || stat === undefined) return undefined;
      if (!stat.isSymbolicLink()) return hostPath;
      const link = await readlink(hostPath);
      current = link.startsWith('/') ? link.split('/') : [...current.slice(0, -1), ...link.split('/')];
    }
    throw hostile(`${what}: too many levels of symlinks`);
  }
}
