import { randomBytes } from 'node:crypto';
import { lstat, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execa } from 'execa';
import { BuildError } from './errors.ts';
import { lxcConfig, mountTargets, type ContainerSpec } from './lxc-config.ts';
import { RootfsResolver } from './rootfs-path.ts';
import { findTool, installHint } from './tools.ts';

export interface RunOptions extends Omit<ContainerSpec, 'name'> {
  /** The recipe layer being built: prefixes every output line and names the container. */
  layer: string;
  /** The layer's `run:` commands as one script; run with `sh -e`, so the first failure stops it. */
  script: string;
  /** A writable directory for LXC's configs, logs and locks. */
  lxcPath: string;
  /** Receives each line of output (stdout and stderr together), prefixed `<layer>: `. */
  onLine?: (line: string) => void;
  /** On failure, open an interactive shell in the same container (for a person at a terminal). */
  shellOnFail?: boolean;
}

export type RunResult = { ok: true } | { ok: false; exitCode: number; lastLines: string[]; message: string };

export const keptLines = 20;

/** What lxc-execute prints when it could not start the container, as opposed to the script failing. */
const containerStartFailure = /^lxc-execute: .*(Failed to spawn container|Failed run an application inside container)/;

/** Runs a layer's script in an unprivileged LXC container over `rootfs`. */
export async function runInContainer(options: RunOptions): Promise<RunResult> {
  const lastLines: string[] = [];
  const exitCode = await withContainer(options, async (lxcArgs) => {
    const subprocess = execa('lxc-execute', [...lxcArgs, '--', '/bin/sh', '-ec', options.script], {
      all: true,
      buffer: false,
      reject: false,
      stdin: 'ignore',
      env: { HOME: options.lxcPath },
    });
    for await (const line of subprocess.iterable({ from: 'all' })) {
      lastLines.push(line);
      if (lastLines.length > keptLines) lastLines.shift();
      options.onLine?.(`${options.layer}: ${line}`);
    }
    return (await subprocess).exitCode ?? 1;
  });
  if (exitCode === 0) return { ok: true };
  if (options.shellOnFail === true) await openShell(options, 'inherit');
  const cause = lastLines.some((line) => containerStartFailure.test(line))
    ? 'the build container did not start (see the LXC errors below; `restack doctor` checks the prerequisites)'
    : `run failed with exit code ${exitCode}`;
  const message = `layer ${options.layer}: ${cause}; last ${lastLines.length} lines of output:\n${lastLines.map((l) => `  ${l}`).join('\n')}`;
  return { ok: false, exitCode, lastLines, message };
}

/** An interactive `/bin/sh` in the build container (stdin scripted for tests); answers its exit code and output. */
export async function openShell(options: Omit<RunOptions, 'script'>, stdio: 'inherit' | { input: string }): Promise<{ exitCode: number; output: string }> {
  return withContainer(options, async (lxcArgs) => {
    const io = stdio === 'inherit' ? ({ stdio: 'inherit' } as const) : ({ input: stdio.input, all: true } as const);
    const result = await execa('lxc-execute', [...lxcArgs, '--', '/bin/sh'], { ...io, reject: false, env: { HOME: options.lxcPath } });
    return { exitCode: result.exitCode ?? 1, output: typeof result.all === 'string' ? result.all : '' };
  });
}

async function withContainer<T>(options: Omit<RunOptions, 'script'>, body: (lxcArgs: string[]) => Promise<T>): Promise<T> {
  if (findTool('lxc-execute') === undefined) {
    throw new BuildError('TOOL_MISSING', `lxc-execute is not installed; layer ${options.layer} cannot run its script`, installHint('lxc-execute'));
  }
  if (options.identity.namespace === 'host') await assertReachable(options.rootfs, options.identity.idShift.uid);
  if ((await new RootfsResolver(options.rootfs).target(['bin', 'sh'], '/bin/sh')) === undefined) {
    throw new BuildError('ROOTFS_NO_SHELL', `layer ${options.layer}: the rootfs has no /bin/sh to run the script with`, 'run: needs a base image with a shell; for a scratch layer use imports with dest instead');
  }
  const name = `${options.layer.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 40)}-${randomBytes(4).toString('hex')}`;
  const spec: ContainerSpec = { ...options, name };
  await mkdir(options.lxcPath, { recursive: true });
  const configPath = join(options.lxcPath, `${name}.conf`);
  await writeFile(configPath, lxcConfig(spec));
  const scaffolding = await missingMountPoints(options.rootfs, mountTargets(spec));
  try {
    return await body(['-P', options.lxcPath, '-n', name, '-f', configPath]);
  } finally {
    for (const path of scaffolding) await rm(path, { recursive: true, force: true });
    await rm(configPath, { force: true });
    await rm(join(options.lxcPath, name), { recursive: true, force: true });
  }
}

/**
 * LXC creates missing mount points (/proc, /stacker/imports, ...) in the rootfs. They are not
 * part of the layer: note the first missing component of each, to remove after the run.
 */
async function missingMountPoints(rootfs: string, targets: readonly string[]): Promise<string[]> {
  const resolver = new RootfsResolver(rootfs);
  const missing = new Set<string>();
  for (const target of targets) {
    const components = target.split('/');
    for (let depth = 1; depth <= components.length; depth++) {
      const hostPath = await resolver.entry(components.slice(0, depth), `/${target}`, false);
      if (hostPath === undefined) break;
      const exists = await lstat(hostPath).then(
        () => true,
        () => false,
      );
      if (!exists) {
        missing.add(hostPath);
        break;
      }
    }
  }
  return [...missing];
}

/** The container's root (a mapped uid) must be able to walk down to its rootfs. */
async function assertReachable(rootfs: string, containerRootUid: number): Promise<void> {
  for (let dir = dirname(rootfs); ; dir = dirname(dir)) {
    const info = await stat(dir);
    if ((info.mode & 0o001) === 0 && info.uid !== containerRootUid) {
      throw new BuildError(
        'ROOTFS_NOT_REACHABLE',
        `the build container's root (host uid ${containerRootUid}) cannot reach ${rootfs}: ${dir} is not searchable by others`,
        `chmod o+x ${dir}, or keep build storage under a directory others may traverse`,
      );
    }
    if (dir === '/') return;
  }
}
