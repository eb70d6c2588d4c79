import { BuildError } from './errors.ts';
import type { BuildIdentity } from './idmap.ts';

/** The PATH a build sees unless the recipe's build_env says otherwise (stacker's default). */
export const defaultPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface BindMount {
  /** Host path. */
  source: string;
  /** Absolute container path. */
  dest: string;
  readOnly: boolean;
  /** Binding a single file needs a file, not a directory, as mount point. */
  isFile: boolean;
}

export interface ContainerSpec {
  name: string;
  rootfs: string;
  identity: BuildIdentity;
  /** Host directory holding the layer's imports; mounted read-only. */
  imports?: { source: string; at: ImportsLocation };
  binds?: readonly BindMount[];
  /** Build environment; PATH and HOME have defaults. */
  environment?: Readonly<Record<string, string>>;
  /** The host file bind-mounted at /etc/resolv.conf. */
  resolvConf?: string;
}

/** `imports:` are seen at /stacker/imports; the deprecated `import:` at /stacker. */
export type ImportsLocation = '/stacker/imports' | '/stacker';

/** fstab fields are separated by whitespace: escape it the way fstab(5) does. */
export function fstabEscape(path: string): string {
  return path.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

function relativeDest(dest: string): string {
  return dest.replace(/^\/+/, '');
}

function mountEntry(source: string, dest: string, options: string): string {
  return `lxc.mount.entry = ${fstabEscape(source)} ${fstabEscape(relativeDest(dest))} none ${options} 0 0`;
}

export function containerEnvironment(environment: Readonly<Record<string, string>> = {}): Record<string, string> {
  const merged: Record<string, string> = { PATH: defaultPath, HOME: '/root', ...environment };
  for (const [key, value] of Object.entries(merged)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) {
      throw new BuildError('LAYER_INVALID', `build environment variable "${key}" is not a valid name`, 'use letters, digits and underscores, not starting with a digit');
    }
    if (/[\n\r]/.test(value)) {
      throw new BuildError('LAYER_INVALID', `build environment variable ${key} contains a line break, which an LXC config cannot carry`, 'pass multi-line values through an import file instead');
    }
  }
  return merged;
}

/**
 * The LXC config of a build container, matching stacker's build environment: the build's user
 * namespace (mapped from the subordinate range, or none inside a pod's own namespace), host
 * network, /proc (mixed), /sys read-only, a /dev of LXC's making, resolv.conf and imports bound
 * read-only, no AppArmor profile of its own (the host's or the pod's applies).
 */
export function lxcConfig(spec: ContainerSpec): string {
  const lines = [`lxc.uts.name = ${spec.name}`, `lxc.rootfs.path = dir:${spec.rootfs}`];
  if (spec.identity.namespace === 'host') {
    const { uid, gid, size } = spec.identity.idShift;
    lines.push(`lxc.idmap = u 0 ${uid} ${size}`, `lxc.idmap = g 0 ${gid} ${size}`);
  } else {
    lines.push('lxc.cgroup.relative = 1');
  }
  lines.push(
    'lxc.net.0.type = none',
    'lxc.mount.auto = proc:mixed',
    mountEntry('/sys', '/sys', 'rbind,ro,create=dir'),
    mountEntry(spec.resolvConf ?? '/etc/resolv.conf', '/etc/resolv.conf', 'bind,ro,create=file'),
  );
  if (spec.imports !== undefined) lines.push(mountEntry(spec.imports.source, spec.imports.at, 'bind,ro,create=dir'));
  for (const bind of spec.binds ?? []) lines.push(mountEntry(bind.source, bind.dest, `bind${bind.readOnly ? ',ro' : ''},create=${bind.isFile ? 'file' : 'dir'}`));
  lines.push('lxc.autodev = 1', 'lxc.apparmor.profile = unconfined');
  for (const [key, value] of Object.entries(containerEnvironment(spec.environment))) lines.push(`lxc.environment = ${key}=${value}`);
  return `${lines.join('\n')}\n`;
}

/** Container paths LXC creates in the rootfs as mount points when they are missing. */
export function mountTargets(spec: ContainerSpec): string[] {
  return ['dev', 'proc', 'sys', 'etc/resolv.conf', ...(spec.imports === undefined ? [] : [relativeDest(spec.imports.at)]), ...(spec.binds ?? []).map((b) => relativeDest(b.dest))];
}
