import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { diffFromUpper } from '../src/build/diff/overlay-upper.ts';
import { writeLayer } from '../src/build/layer-writer.ts';
import { writeBusyboxTarball } from '../test/build-engine/helpers.ts';
import { timed, type BenchRow } from './report.ts';

const cli = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

async function restackBuild(args: string[]): Promise<void> {
  const result = await execa(process.execPath, [cli, 'build', ...args], { reject: false });
  if (result.exitCode !== 0) throw new Error(`restack build ${args.join(' ')} failed:\n${result.stderr}`);
}

/** A tree of `megabytes` MB: half incompressible, half text, in files of 1 to 4 MB. */
async function makeTree(root: string, megabytes: number): Promise<void> {
  let written = 0;
  for (let index = 0; written < megabytes << 20; index++) {
    const size = (1 + (index % 4)) << 20;
    const dir = join(root, `dir${index % 16}`);
    await mkdir(dir, { recursive: true });
    const content = index % 2 === 0 ? randomBytes(size) : Buffer.from('restack layer bench line\n'.repeat(Math.ceil(size / 25)).slice(0, size));
    await writeFile(join(dir, `file${index}`), content);
    written += size;
  }
}

async function diskUsedKiB(path: string): Promise<number> {
  return Number((await execa('du', ['-sk', '-x', path])).stdout.split(/\s/)[0]);
}

/**
 * The builder: a cached rebuild against the first build; ten images from one base with btrfs
 * snapshots against overlay; writing a 200 MB layer against `tar -cz` of the same directory.
 */
export async function buildBench(): Promise<BenchRow[]> {
  const work = await mkdtemp(join(tmpdir(), 'restack-bench-build-'));
  await chmod(work, 0o755);
  const rows: BenchRow[] = [];
  try {
    await writeBusyboxTarball(join(work, 'base.tar'));
    const layers = Array.from({ length: 10 }, (_, index) => `image${index}:\n  from: {type: built, tag: base}\n  run: |\n    mkdir -p /srv/app${index}\n    echo ${index} > /srv/app${index}/id\n`);
    await writeFile(join(work, 'stacker.yaml'), `base:\n  from: {type: tar, url: base.tar}\n  build_only: true\n${layers.join('')}`);
    const recipe = join(work, 'stacker.yaml');

    const overlayRoots = join(work, 'roots-overlay');
    const first = await timed(() => restackBuild(['-f', recipe, '--roots-dir', overlayRoots, '--oci-dir', join(work, 'oci'), '--storage', 'overlay']));
    const cached = await timed(() => restackBuild(['-f', recipe, '--roots-dir', overlayRoots, '--oci-dir', join(work, 'oci'), '--storage', 'overlay']));
    rows.push({ bench: 'build', metric: 'cached rebuild of 11 layers', value: cached.seconds, unit: 's', reference: { name: 'first build', value: first.seconds } });

    const btrfsDir = join(work, 'btrfs');
    await execa(process.execPath, [cli, 'setup-btrfs', '--size', '2G', btrfsDir]);
    try {
      const btrfs = await timed(() => restackBuild(['-f', recipe, '--roots-dir', join(btrfsDir, 'roots'), '--oci-dir', join(work, 'oci-btrfs'), '--storage', 'btrfs', '--no-cache']));
      rows.push({ bench: 'build', metric: 'ten images from one base, btrfs', value: btrfs.seconds, unit: 's', reference: { name: 'overlay', value: first.seconds } });
      const btrfsUsed = Number((await execa('df', ['--output=used', '-k', btrfsDir])).stdout.split('\n')[1]);
      rows.push({ bench: 'build', metric: 'disk used, btrfs (filesystem used)', value: btrfsUsed, unit: 'KiB', reference: { name: 'overlay (du)', value: await diskUsedKiB(overlayRoots) } });
    } finally {
      await execa('umount', [btrfsDir]).catch(() => undefined);
    }

    const tree = join(work, 'tree');
    await makeTree(tree, 200);
    const blobs = join(work, 'blobs');
    await mkdir(blobs);
    const ours = await timed(async () => writeLayer({ diff: await diffFromUpper(tree), directory: blobs }));
    const tar = await timed(() => execa('tar', ['-czf', join(work, 'tree.tar.gz'), '-C', tree, '.']));
    rows.push({ bench: 'layer', metric: 'write a 200 MB layer (tar+gzip)', value: ours.seconds, unit: 's', reference: { name: 'tar -cz', value: tar.seconds }, target: '<= 1.3x tar', met: ours.seconds <= 1.3 * tar.seconds });
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return rows;
}
