import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { runTool } from '../tools.ts';

/** Thin wrappers over mount(8) and umount(8); Node has no mount(2). */

/** mountinfo escapes space, tab, newline and backslash in paths as octal. */
function unescapeMountinfo(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

export async function mountPoints(): Promise<Set<string>> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  return new Set(text.split('\n').filter((line) => line !== '').map((line) => unescapeMountinfo(line.split(' ')[4] ?? '')));
}

export async function isMountPoint(path: string): Promise<boolean> {
  return (await mountPoints()).has(resolve(path));
}

export interface OverlayMount {
  /** Lower dirs, topmost first; these and upper and work are relative to `cwd`, since short names keep the option string within its one-page limit. */
  lower: readonly string[];
  upper: string;
  work: string;
  target: string;
  cwd: string;
}

/**
 * `userxattr` keeps overlayfs's own attributes in the user.* namespace: required in a user
 * namespace (a pod with hostUsers: false), and harmless as root, so every mount uses it and the
 * on-disk format of cached layers is the same everywhere.
 */
export async function mountOverlay(mount: OverlayMount): Promise<void> {
  const options = ['userxattr', `lowerdir=${mount.lower.join(':')}`, `upperdir=${mount.upper}`, `workdir=${mount.work}`].join(',');
  await runTool('mount', ['-t', 'overlay', 'overlay', '-o', options, mount.target], { cwd: mount.cwd });
}

export async function unmount(target: string): Promise<void> {
  await runTool('umount', [target]);
}
