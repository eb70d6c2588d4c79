import { readFile } from 'node:fs/promises';
import { userInfo } from 'node:os';
import { BuildError } from './errors.ts';

/** How container ids map to ids on the filesystem: host id = container id + shift, for `size` ids. */
export interface IdShift {
  uid: number;
  gid: number;
  size: number;
}

/**
 * Where the build runs. `host`: the initial user namespace; files are owned by a subordinate id
 * range and LXC maps it with lxc.idmap. `namespaced`: already inside a user namespace (a pod with
 * `hostUsers: false`); the namespace is the isolation, ids are not shifted and LXC maps nothing.
 */
export interface BuildIdentity {
  namespace: 'host' | 'namespaced';
  idShift: IdShift;
}

export const containerIdCount = 65536;

/** Ids taken as they are: for trees that are not a container's rootfs (tests, plain directories). */
export const noIdShift: IdShift = { uid: 0, gid: 0, size: 2 ** 32 - 1 };

export interface SubordinateRange {
  start: number;
  count: number;
}

/** The ranges /etc/subuid or /etc/subgid grant to a user, named either by login or by numeric id. */
export function parseSubordinateIds(text: string, user: string, id: number): SubordinateRange[] {
  const ranges: SubordinateRange[] = [];
  for (const line of text.split('\n')) {
    const [owner, start, count] = line.trim().split(':');
    if (owner === undefined || start === undefined || count === undefined) continue;
    if (owner !== user && owner !== String(id)) continue;
    const range = { start: Number(start), count: Number(count) };
    if (Number.isInteger(range.start) && Number.isInteger(range.count) && range.count > 0) ranges.push(range);
  }
  return ranges;
}

/** /proc/self/uid_map of the initial namespace maps the whole 32-bit id space onto itself. */
export function isInitialUserNamespace(uidMap: string): boolean {
  return /^\s*0\s+0\s+4294967295\s*$/.test(uidMap.trim());
}

/** The number of ids a namespace's uid_map makes usable, counted from container id 0. */
export function mappedIdCount(idMap: string): number {
  let next = 0;
  const lines = idMap
    .trim()
    .split('\n')
    .map((line) => line.trim().split(/\s+/).map(Number))
    .sort((a, b) => (a[0] ?? 0) - (b[0] ?? 0));
  for (const [inside, , count] of lines) {
    if (inside !== next || count === undefined) break;
    next += count;
  }
  return next;
}

export function subordinateRangeHint(user: string): string {
  return (
    `give ${user} a range of ${containerIdCount} ids: ` +
    `echo '${user}:100000:${containerIdCount}' >> /etc/subuid; echo '${user}:100000:${containerIdCount}' >> /etc/subgid`
  );
}

export interface IdentitySources {
  uidMap: string;
  gidMap: string;
  subuid: string;
  subgid: string;
  user: string;
  uid: number;
}

/** Pure: decides the identity of a build from the namespace maps and the subordinate id files. */
export function decideIdentity(sources: IdentitySources): BuildIdentity {
  if (!isInitialUserNamespace(sources.uidMap)) {
    const size = Math.min(containerIdCount, mappedIdCount(sources.uidMap), mappedIdCount(sources.gidMap));
    return { namespace: 'namespaced', idShift: { uid: 0, gid: 0, size } };
  }
  const uids = parseSubordinateIds(sources.subuid, sources.user, sources.uid);
  const gids = parseSubordinateIds(sources.subgid, sources.user, sources.uid);
  const uidRange = uids.find((range) => range.count >= containerIdCount);
  const gidRange = gids.find((range) => range.count >= containerIdCount);
  if (uidRange === undefined || gidRange === undefined) {
    const file = uidRange === undefined ? '/etc/subuid' : '/etc/subgid';
    throw new BuildError(
      'ID_RANGE_MISSING',
      `${file} grants user ${sources.user} no range of ${containerIdCount} subordinate ids; unprivileged builds need one`,
      subordinateRangeHint(sources.user),
    );
  }
  return { namespace: 'host', idShift: { uid: uidRange.start, gid: gidRange.start, size: containerIdCount } };
}

async function readOrEmpty(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch {
    return '';
  }
}

/** Reads the running process's namespace and subordinate ids and decides the build identity. */
export async function detectIdentity(): Promise<BuildIdentity> {
  const { username, uid } = userInfo();
  return decideIdentity({
    uidMap: await readOrEmpty('/proc/self/uid_map'),
    gidMap: await readOrEmpty('/proc/self/gid_map'),
    subuid: await readOrEmpty('/etc/subuid'),
    subgid: await readOrEmpty('/etc/subgid'),
    user: username,
    uid,
  });
}
