// npm run demo: the seeds' example end to end on a local registry. Builds base, ssl, python3 and A
// from a busybox base made here, bumps python3 (python3+1), and lets `restack update` decide:
// it swaps python3+1 into A without a rebuild. Shows A's layers and their origins before and
// after. Cleans up after itself.
import { access, chmod, copyFile, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startRegistry } from '../test/services/registry.ts';

const started = Date.now();
const cli = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;
const step = (text: string) => console.log(`\n\x1b[1m[${elapsed()}] ${text}\x1b[0m`);

async function restack(args: string[], options: { quiet?: boolean } = {}): Promise<string> {
  const result = await execa(process.execPath, [cli, ...args], { reject: false, stderr: options.quiet === true ? 'pipe' : 'inherit' });
  if (result.exitCode !== 0) throw new Error(`restack ${args.join(' ')} failed (exit ${result.exitCode})${options.quiet === true ? `:\n${result.stderr}` : ''}`);
  return result.stdout;
}

async function requireTool(path: string, install: string): Promise<void> {
  await access(path).catch(() => {
    throw new Error(`${path} is missing: run bash scripts/install.sh (it installs ${install})`);
  });
}

/** A minimal rootfs: busybox-static and the applets the recipes use, as a tarball for `from: type: tar`. */
async function busyboxRootfs(work: string): Promise<string> {
  const root = join(work, 'rootfs');
  for (const dir of ['bin', 'etc', 'usr/bin', 'usr/lib', 'srv', 'tmp']) await mkdir(join(root, dir), { recursive: true });
  await copyFile('/bin/busybox', join(root, 'bin/busybox'));
  await chmod(join(root, 'bin/busybox'), 0o755);
  for (const applet of ['sh', 'echo', 'cat', 'mkdir', 'ls', 'touch', 'cp', 'rm']) await symlink('busybox', join(root, 'bin', applet));
  await writeFile(join(root, 'etc/os-release'), 'ID=busybox\nNAME="restack demo base"\n');
  const tarball = join(work, 'base.tar');
  await execa('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-C', root, '-cf', tarball, '.']);
  return tarball;
}

function recipes(registry: string, pythonVersion: string) {
  const base = `docker://${registry}/demo/base:latest`;
  return {
    'base.yaml': `base:\n  from: {type: tar, url: base.tar}\n`,
    'deps.yaml': [
      `ssl:\n  from: {type: docker, url: "${base}"}\n  run: |\n    mkdir -p /usr/lib/ssl\n    echo "openssl 3.0.13" > /usr/lib/ssl/version\n`,
      `python3:\n  from: {type: docker, url: "${base}"}\n  run: |\n    echo "#!/bin/sh" > /usr/bin/python3\n    echo "echo Python ${pythonVersion}" >> /usr/bin/python3\n    chmod +x /usr/bin/python3\n`,
    ].join(''),
    'app.yaml': `A:\n  from: {type: docker, url: "${base}"}\n  apply:\n    - docker://${registry}/demo/ssl:latest\n    - docker://${registry}/demo/python3:latest\n  run: |\n    mkdir -p /srv/A\n    echo "A, built on \\$(cat /usr/lib/ssl/version)" > /srv/A/README\n  entrypoint: /usr/bin/python3\n`,
  };
}

interface Inspected {
  digest: string;
  platforms: { layers: { digest: string; size: number; origin: { kind: string; ref?: string; digest?: string } }[] }[];
}

function origin(layer: Inspected['platforms'][number]['layers'][number]): string {
  const { kind, ref, digest } = layer.origin;
  if (kind === 'own') return "A's own run step";
  const name = ref?.replace(/^docker:\/\/[^/]+\/demo\//, '') ?? '?';
  return `${kind === 'base' ? 'base' : 'apply'} ${name}@${digest?.slice(7, 19) ?? '?'}`;
}

function table(before: Inspected, after: Inspected): string {
  const rows = [['#', 'BEFORE (A)', 'origin', 'AFTER (A\')', 'origin', '']];
  const a = before.platforms[0]?.layers ?? [];
  const b = after.platforms[0]?.layers ?? [];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const left = a[i];
    const right = b[i];
    rows.push([
      String(i),
      left?.digest.slice(7, 19) ?? '',
      left === undefined ? '' : origin(left),
      right?.digest.slice(7, 19) ?? '',
      right === undefined ? '' : origin(right),
      left?.digest === right?.digest ? 'same bytes' : 'swapped',
    ]);
  }
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((row) => row[c]!.length)));
  return rows.map((row) => row.map((cell, c) => cell.padEnd(widths[c]!)).join('  ').trimEnd()).join('\n');
}

const work = await mkdtemp(join(tmpdir(), 'restack-demo-'));
// The build container's root is a subordinate id: it must be able to traverse to the rootfs.
await chmod(work, 0o755);
let stopRegistry = async () => {};
try {
  await requireTool('/bin/busybox', 'busybox-static');
  await requireTool('/usr/bin/docker-registry', 'docker-registry');
  await requireTool('/usr/bin/lxc-execute', 'lxc');

  step('starting a registry on loopback');
  const registry = await startRegistry();
  stopRegistry = registry.stop;
  console.log(`registry at http://${registry.host}`);
  const push = `docker://${registry.host}/demo`;
  const build = (file: string) =>
    restack(['build', '-f', join(work, file), '--oci-dir', join(work, 'oci'), '--roots-dir', join(work, 'roots'), '--storage', 'overlay', '--push', push]);
  const writeRecipes = async (pythonVersion: string) => {
    for (const [name, text] of Object.entries(recipes(registry.host, pythonVersion))) await writeFile(join(work, name), text);
  };

  step('making a tiny base rootfs from busybox-static');
  await busyboxRootfs(work);
  await writeRecipes('3.11.9');

  step('building base, then ssl and python3, then A (which applies ssl and python3)');
  await build('base.yaml');
  await build('deps.yaml');
  await build('app.yaml');
  const before = JSON.parse(await restack(['inspect', `${push}/a:latest`, '--json'], { quiet: true })) as Inspected;
  console.log(await restack(['inspect', `${push}/a:latest`], { quiet: true }));

  step("python3+1: changing python3's recipe and rebuilding it (ssl comes from the cache)");
  await writeRecipes('3.12.4');
  await build('deps.yaml');

  step('restack update: A applies python3, which changed, so python3+1 is swapped into A (no rebuild, no layer bytes pushed)');
  console.log(await restack(['update', '-f', join(work, 'app.yaml'), '--push', push, '--oci-dir', join(work, 'oci'), '--roots-dir', join(work, 'roots'), '--storage', 'overlay'], { quiet: true }));
  const after = JSON.parse(await restack(['inspect', `${push}/a:latest`, '--json'], { quiet: true })) as Inspected;

  step("A's layers before and after");
  console.log(table(before, after));
  console.log(`\nA  before ${before.digest}\nA' after  ${after.digest}`);
  const ownBefore = before.platforms[0]?.layers.at(-1)?.digest;
  const ownAfter = after.platforms[0]?.layers.at(-1)?.digest;
  console.log(ownBefore === ownAfter ? "A's own layer is byte-identical: its run step did not run again." : "A's own layer changed: unexpected!");
  step(`done in ${elapsed()}`);
} catch (error) {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
} finally {
  await stopRegistry();
  await rm(work, { recursive: true, force: true }).catch((error: unknown) => console.error(`could not remove ${work}: ${String(error)}`));
}
