import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import type { Readable } from 'node:stream';
import { execa } from 'execa';
import { BuildError } from './errors.ts';

/** Every host tool the builder shells out to, with the Debian package that provides it. */
export const toolPackages = {
  'lxc-execute': 'lxc',
  btrfs: 'btrfs-progs',
  'mkfs.btrfs': 'btrfs-progs',
  mksquashfs: 'squashfs-tools',
  unsquashfs: 'squashfs-tools',
  getfattr: 'attr',
  setfattr: 'attr',
  mknod: 'coreutils',
  truncate: 'coreutils',
  mount: 'mount',
  umount: 'mount',
  newuidmap: 'uidmap',
  newgidmap: 'uidmap',
} as const;
export type Tool = keyof typeof toolPackages;

export function installHint(tool: Tool): string {
  return `install it: apt-get install -y ${toolPackages[tool]}`;
}

/** The absolute path of a tool on PATH, or undefined. */
export function findTool(tool: Tool, path = process.env['PATH'] ?? '/usr/sbin:/usr/bin:/sbin:/bin'): string | undefined {
  for (const dir of path.split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, tool);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return undefined;
}

export interface ToolOptions {
  cwd?: string;
  input?: string | Uint8Array | Readable;
  env?: Record<string, string>;
}

/** Runs a tool to completion; a missing tool or a failure becomes a BuildError quoting the command and its stderr. */
export async function runTool(tool: Tool, args: readonly string[], options: ToolOptions = {}): Promise<string> {
  const result = await execa(tool, args, {
    cwd: options.cwd,
    input: options.input,
    env: options.env,
    reject: false,
    stripFinalNewline: true,
  });
  if (result.code === 'ENOENT') {
    throw new BuildError('TOOL_MISSING', `${tool} is not installed (needed to run: ${tool} ${args.join(' ')})`, installHint(tool));
  }
  if (result.failed) {
    const detail = String(result.stderr || result.stdout || result.message).split('\n').slice(-10).join('\n');
    throw new BuildError('TOOL_FAILED', `${tool} ${args.join(' ')} failed (exit ${result.exitCode ?? 'none'}): ${detail}`);
  }
  return result.stdout;
}
