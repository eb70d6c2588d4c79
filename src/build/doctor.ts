import { mkdtemp, mkdir, readFile, rm, access } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import * as zlib from 'node:zlib';
import { BuildError } from './errors.ts';
import { containerIdCount, detectIdentity } from './idmap.ts';
import { isOnBtrfs } from './storage/btrfs-tools.ts';
import { mountOverlay, unmount } from './storage/mounts.ts';
import type { StorageChoice } from './storage/open.ts';
import { findTool, installHint, type Tool } from './tools.ts';

export interface DoctorCheck {
  check: string;
  ok: boolean;
  detail: string;
  /** What to run or change when the check fails. */
  fix?: string;
  /** False for what only some builds need (btrfs when overlay is used, squashfs layers). */
  required: boolean;
}

export interface DoctorOptions {
  /**
   * Where build storage will live (`restack build --roots-dir`): the overlay is probed there, and
   * its filesystem decides what `auto` picks. Not /tmp: in a pod that is the container's own
   * overlayfs, where an overlay cannot be mounted, while the storage emptyDir can hold one.
   */
  storageRoot: string;
  storage?: StorageChoice;
  /** The PATH tools are looked up in (default: this process's). */
  path?: string;
}

/** Checks every prerequisite of a build on this machine, each with what to do when it is missing. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorCheck[]> {
  const storage = options.storage ?? 'auto';
  const storageRoot = resolve(options.storageRoot);
  const onBtrfs = await isOnBtrfs(storageRoot).catch(() => false);
  const driver = storage === 'auto' ? (onBtrfs ? 'btrfs' : 'overlay') : storage;
  const checks: DoctorCheck[] = [zstdCheck(), ...(await identityChecks(options.path))];
  const tool = (name: Tool, why: string, required: boolean) => toolCheck(name, why, required, options.path);
  checks.push(
    tool('lxc-execute', 'runs the run: steps in an unprivileged container', true),
    tool('getfattr', 'reads extended attributes (opaque dirs, file capabilities)', true),
    tool('setfattr', 'restores extended attributes when unpacking', true),
    tool('mknod', 'creates whiteouts and device nodes', true),
    tool('mount', 'mounts overlayfs and loop devices', true),
    tool('btrfs', 'manages subvolumes for the btrfs storage driver', driver === 'btrfs'),
    tool('mkfs.btrfs', 'formats the loop image of restack setup-btrfs', false),
    tool('mksquashfs', 'writes squashfs layers', false),
  );
  checks.push(await overlayCheck(storageRoot, driver === 'overlay'));
  checks.push(await loopCheck());
  checks.push(storageCheck(storageRoot, storage, onBtrfs));
  return checks;
}

export function doctorPassed(checks: readonly DoctorCheck[]): boolean {
  return checks.every((check) => check.ok || !check.required);
}

function zstdCheck(): DoctorCheck {
  const ok = typeof zlib.createZstdDecompress === 'function';
  return {
    check: 'zstd in node:zlib',
    ok,
    detail: `Node ${process.versions.node}${ok ? ' reads zstd layers' : ' cannot read zstd layers'}`,
    ...(ok ? {} : { fix: 'use Node 22.15 or later' }),
    required: true,
  };
}

async function identityChecks(path: string | undefined): Promise<DoctorCheck[]> {
  const check = 'build user namespace';
  let identity;
  try {
    identity = await detectIdentity();
  } catch (error) {
    if (!(error instanceof BuildError)) throw error;
    return [{ check, ok: false, detail: error.message, ...(error.hint === undefined ? {} : { fix: error.hint }), required: true }];
  }
  const { uid, gid, size } = identity.idShift;
  if (identity.namespace === 'host') {
    const checks: DoctorCheck[] = [{ check, ok: true, detail: `containers map ids 0-${size - 1} to host uids from ${uid}, gids from ${gid}`, required: true }];
    if (process.getuid?.() !== 0) {
      checks.push(toolCheck('newuidmap', 'lets a non-root user map its subordinate uids', true, path), toolCheck('newgidmap', 'maps subordinate gids', true, path));
    }
    return checks;
  }
  const setgroups = (await readFile('/proc/self/setgroups', 'utf8').catch(() => 'allow')).trim();
  const enoughIds = size >= containerIdCount;
  return [
    {
      check,
      ok: enoughIds,
      detail: `inside a user namespace mapping ${size} ids; LXC runs without lxc.idmap`,
      ...(enoughIds ? {} : { fix: `map ${containerIdCount} ids into the namespace (a pod with hostUsers: false does; unshare --map-users=<start>,0,${containerIdCount})` }),
      required: true,
    },
    {
      check: 'setgroups allowed',
      ok: setgroups === 'allow',
      detail: `/proc/self/setgroups is "${setgroups}"; LXC drops supplementary groups when it starts a container`,
      ...(setgroups === 'allow' ? {} : { fix: 'create the user namespace with newuidmap/newgidmap or as root (not unshare --map-root-user)' }),
      required: true,
    },
  ];
}

function toolCheck(tool: Tool, why: string, required: boolean, path: string | undefined): DoctorCheck {
  const found = findTool(tool, path);
  return { check: tool, ok: found !== undefined, detail: found === undefined ? `not found; ${why}` : `${found}: ${why}`, ...(found === undefined ? { fix: installHint(tool) } : {}), required };
}

/** Mounts a throwaway overlay with `userxattr`, exactly as the overlay driver does. */
async function overlayCheck(parent: string, required: boolean): Promise<DoctorCheck> {
  const check = 'overlayfs with userxattr';
  let dir: string | undefined;
  let result: DoctorCheck;
  try {
    await mkdir(parent, { recursive: true });
    dir = await mkdtemp(join(parent, '.doctor-'));
    for (const sub of ['lower', 'upper', 'work', 'merged']) await mkdir(join(dir, sub));
    await mountOverlay({ lower: ['lower'], upper: 'upper', work: 'work', target: join(dir, 'merged'), cwd: dir });
    await unmount(join(dir, 'merged'));
    result = { check, ok: true, detail: `mounted and unmounted an overlay in ${parent}`, required };
  } catch (error) {
    result = {
      check,
      ok: false,
      detail: `could not mount an overlay in ${parent}: ${(error as Error).message}`,
      fix: 'overlayfs in a user namespace needs Linux 5.11 or later (modprobe overlay); or use the btrfs driver: restack setup-btrfs --size 20G <dir>',
      required,
    };
  }
  // A cleanup that fails (an overlay left mounted when umount cannot work, e.g. without /proc) is
  // reported with the check, never thrown over its result.
  if (dir !== undefined) {
    const left = dir;
    await rm(left, { recursive: true, force: true }).catch((error: unknown) => {
      result = { ...result, ok: false, detail: `${result.detail}; then could not remove ${left}: ${(error as Error).message}`, fix: `umount ${join(left, 'merged')} && rm -r ${left}; is /proc mounted?` };
    });
  }
  return result;
}

async function loopCheck(): Promise<DoctorCheck> {
  const ok = await access('/dev/loop-control').then(
    () => true,
    () => false,
  );
  return {
    check: 'loop devices',
    ok,
    detail: ok ? '/dev/loop-control exists: restack setup-btrfs can make a loop-backed btrfs' : 'no /dev/loop-control: restack setup-btrfs cannot work here',
    ...(ok ? {} : { fix: 'use the overlay storage driver (the default outside btrfs), or modprobe loop on the host' }),
    required: false,
  };
}

function storageCheck(root: string, storage: StorageChoice, onBtrfs: boolean): DoctorCheck {
  const ok = storage !== 'btrfs' || onBtrfs;
  const picked = storage === 'auto' ? `auto picks ${onBtrfs ? 'btrfs' : 'overlay'}` : `${storage} requested`;
  return {
    check: 'storage root',
    ok,
    detail: `${root} is ${onBtrfs ? '' : 'not '}on btrfs; ${picked}`,
    ...(ok ? {} : { fix: `restack setup-btrfs --size 20G ${root}` }),
    required: true,
  };
}
