import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { writeBusyboxTarball } from '../test/build-engine/helpers.ts';
import { startRegistry } from '../test/services/registry.ts';
import { timed, type BenchRow } from './report.ts';

const cli = join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');

/** Six layers, each on the one before; `last` is the last layer's run line. */
function recipe(last: string): string {
  const layers = ['base:\n  from: {type: tar, url: base.tar}\n  build_only: true\n'];
  for (let index = 1; index <= 6; index++) {
    const run = index === 6 ? last : `mkdir -p /srv/l${index} && echo ${index} > /srv/l${index}/id`;
    layers.push(`l${index}:\n  from: {type: built, tag: ${index === 1 ? 'base' : `l${index - 1}`}}\n  run: ["${run}"]\n`);
  }
  return layers.join('');
}

/** `restack build --json`: its time and how many containers ran (run steps). */
async function measuredBuild(work: string, more: string[]): Promise<{ seconds: number; containers: number }> {
  const args = [cli, 'build', '--json', '-f', join(work, 'stacker.yaml'), '--oci-dir', join(work, 'oci'), '--roots-dir', join(work, 'roots'), ...more];
  const { result, seconds } = await timed(() => execa(process.execPath, args, { reject: false, env: { SOURCE_DATE_EPOCH: '1700000000' } }));
  if (result.exitCode !== 0) throw new Error(`restack build failed:\n${result.stderr}`);
  const containers = result.stdout.split('\n').filter((line) => line.includes('"event":"step"') && line.includes('"step":"run"')).length;
  return { seconds, containers };
}

/** The build directories emptied, as a new build pod finds them (same paths: they are part of the cache keys). */
async function emptied(work: string): Promise<void> {
  await rm(join(work, 'oci'), { recursive: true, force: true });
  await rm(join(work, 'roots'), { recursive: true, force: true });
}

/**
 * A 6-layer recipe whose last layer changed, built in an empty directory (a build pod) with and
 * without the registry cache, against the same build with the local cache warm.
 */
export async function buildCacheBench(): Promise<BenchRow[]> {
  const work = await mkdtemp(join(tmpdir(), 'restack-bench-cache-'));
  await chmod(work, 0o755);
  const registry = await startRegistry({ parentDirectory: '/dev/shm' });
  try {
    const cacheRepo = ['--cache-repo', `docker://${registry.host}/bench/cache`];
    await writeBusyboxTarball(join(work, 'base.tar'));
    await writeFile(join(work, 'stacker.yaml'), recipe('echo v1 > /srv/app'));
    await measuredBuild(work, cacheRepo);
    await writeFile(join(work, 'stacker.yaml'), recipe('echo v2 > /srv/app'));
    const warm = await measuredBuild(work, []);
    await emptied(work);
    const withCache = await measuredBuild(work, cacheRepo);
    await emptied(work);
    const without = await measuredBuild(work, []);
    return [
      { bench: 'build-cache', metric: 'empty dir + registry cache: time', value: withCache.seconds, unit: 's', reference: { name: 'no cache', value: without.seconds } },
      { bench: 'build-cache', metric: 'empty dir + registry cache: time', value: withCache.seconds, unit: 's', reference: { name: 'local warm cache', value: warm.seconds } },
      { bench: 'build-cache', metric: 'empty dir + registry cache: containers', value: withCache.containers, unit: 'runs', reference: { name: 'no cache', value: without.containers } },
      { bench: 'build-cache', metric: 'local warm cache: containers', value: warm.containers, unit: 'runs' },
    ];
  } finally {
    await registry.stop();
    await rm(work, { recursive: true, force: true });
  }
}
