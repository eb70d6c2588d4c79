/**
 * A realistic base: a debootstrapped Debian bookworm (minbase) as a `from: tar` rootfs, with
 * `apt-get install hello` run on top in the build container and pushed to docker-registry; the
 * pushed image is unpacked by umoci and the installed binary runs from it.
 */
import assert from 'node:assert/strict';
import { access, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { SkipError, requireProgram } from '../services/service.ts';
import { tempDir } from '../build/helpers.ts';
import { build, outputsOf, suiteDir } from './helpers.ts';

const mirror = 'http://deb.debian.org/debian';
const suite = 'bookworm';

/**
 * The minbase rootfs as an uncompressed tar, made once and kept outside the repository
 * (`$RESTACK_CACHE/debootstrap/`): debootstrap takes about half a minute and 200 MB.
 * Written to a temp name and renamed, so an interrupted run never leaves a partial tarball.
 */
async function cachedDebootstrapTar(): Promise<string> {
  const debootstrap = await requireProgram('debootstrap', 'debootstrap');
  const cache = join(process.env['RESTACK_CACHE'] ?? join(homedir(), '.cache', 'restack'), 'debootstrap');
  const tarball = join(cache, `${suite}-minbase.tar`);
  try {
    await access(tarball);
    return tarball;
  } catch {
    // not cached yet
  }
  const release = `${mirror}/dists/${suite}/Release`;
  const answer = await fetch(release, { method: 'HEAD', signal: AbortSignal.timeout(5_000) }).then(
    (response) => (response.ok ? undefined : `HTTP ${response.status}`),
    (error: Error) => error.message,
  );
  if (answer !== undefined) throw new SkipError(`the Debian mirror is unreachable (HEAD ${release}: ${answer}); debootstrap needs it`);
  await mkdir(cache, { recursive: true });
  const work = await mkdtemp(join(cache, 'tmp-'));
  try {
    const rootfs = join(work, 'rootfs');
    await execa(debootstrap, ['--variant=minbase', suite, rootfs, mirror]);
    await execa('tar', ['--numeric-owner', '-C', rootfs, '-cf', join(work, 'rootfs.tar'), '.']);
    await rename(join(work, 'rootfs.tar'), tarball);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return tarball;
}

const { service: services, skip } = await startOrSkip(async () => ({ tarball: await cachedDebootstrapTar(), registry: await startRegistry() }));

describe(`restack build: apt-get install on a debootstrapped ${suite}`, { skip }, () => {
  const { tarball, registry: running } = services as { tarball: string; registry: RunningRegistry };
  const prefix = () => `docker://${running.host}/deb`;
  let dir: string;

  before(async () => {
    dir = await suiteDir('restack-debootstrap-');
    await writeFile(
      join(dir, 'stacker.yaml'),
      [
        'base:',
        `  from: {type: tar, url: "${tarball}"}`,
        '  build_only: true',
        'hello:',
        '  from: {type: built, tag: base}',
        '  run: apt-get update && apt-get install -y --no-install-recommends hello',
        '',
      ].join('\n'),
    );
  });
  after(async () => {
    await running.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('hello is installed by apt in the container, pushed, and runs from the unpacked image', async (t) => {
    const args = ['-f', join(dir, 'stacker.yaml'), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots'), '--push', prefix(), '--storage', 'overlay'];
    const outputs = outputsOf(await build(args));
    const hello = outputs.get('hello');
    assert.deepEqual(hello?.pushed, [`${prefix()}/hello:latest@${hello?.digest}`]);

    const work = await tempDir(t, 'restack-debootstrap-umoci-');
    await execa('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `${prefix()}/hello:latest`, `oci:${work}/layout:hello`]);
    await execa('umoci', ['unpack', '--rootless', '--image', `${work}/layout:hello`, `${work}/bundle`]);
    const rootfs = join(work, 'bundle', 'rootfs');
    const ran = await execa('unshare', ['--user', '--map-root-user', '--mount', '--root', rootfs, '/usr/bin/hello']);
    assert.equal(ran.stdout, 'Hello, world!');
  });
});
