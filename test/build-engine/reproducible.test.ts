/**
 * Same recipe, same SOURCE_DATE_EPOCH: the same digests from two clean builds in different
 * directories, and from the btrfs storage driver as from overlay.
 */
import assert from 'node:assert/strict';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { teardownBtrfs } from '../../src/build/storage/btrfs-tools.ts';
import { restack } from '../cli/restack.ts';
import { readTarEntries, tempDir } from '../build/helpers.ts';
import { build, outputsOf, writeBusyboxTarball } from './helpers.ts';

const epoch = 1700000000;

const recipe = `
base:
  from: {type: tar, url: rootfs.tar.gz}
  build_only: true
app:
  from: {type: built, tag: base}
  imports:
    - path: note.txt
      dest: /etc/note
  run: |
    mkdir -p /srv/data
    echo built > /srv/data/out
    touch /srv/stamp
    ln -s data/out /srv/link
  cmd: /bin/cat /srv/data/out
`;

async function project(t: TestContext): Promise<string> {
  const dir = await tempDir(t, 'restack-repro-');
  await writeBusyboxTarball(join(dir, 'rootfs.tar.gz'));
  await writeFile(join(dir, 'note.txt'), 'a note\n');
  await writeFile(join(dir, 'stacker.yaml'), recipe);
  return dir;
}

async function buildIn(dir: string, ...more: string[]) {
  const run = await build(['-f', 'stacker.yaml', '--oci-dir', 'oci', '--roots-dir', 'roots', ...more], { cwd: dir, env: { SOURCE_DATE_EPOCH: String(epoch) } });
  return { run, outputs: outputsOf(run) };
}

function digests(outputs: Awaited<ReturnType<typeof buildIn>>['outputs']): Record<string, string | undefined> {
  return { base: outputs.get('base')?.digest, app: outputs.get('app')?.digest };
}

async function blob(dir: string, digest: string): Promise<Buffer> {
  return readFile(join(dir, 'oci', 'blobs', 'sha256', digest.slice('sha256:'.length)));
}

test('two clean builds, overlay and btrfs, give identical digests; times are SOURCE_DATE_EPOCH', async (t) => {
  const first = await project(t);
  const second = await project(t);
  const one = await buildIn(first, '--storage', 'overlay');
  const two = await buildIn(second, '--storage', 'overlay');
  assert.deepEqual(digests(two.outputs), digests(one.outputs));

  const manifest = JSON.parse((await blob(first, one.outputs.get('app')?.digest as string)).toString()) as { config: { digest: string }; layers: { digest: string }[] };
  const config = JSON.parse((await blob(first, manifest.config.digest)).toString()) as { created: string; history: { created: string }[] };
  assert.equal(config.created, '2023-11-14T22:13:20Z');
  assert.ok(config.history.every((entry) => entry.created === '2023-11-14T22:13:20Z'));
  const own = await readTarEntries(await blob(first, manifest.layers[1]?.digest as string));
  assert.deepEqual(own.map((entry) => entry.name), ['etc/', 'etc/note', 'srv/', 'srv/data/', 'srv/data/out', 'srv/link', 'srv/stamp']);
  assert.ok(own.every((entry) => entry.mtime <= epoch && entry.uid === 0 && entry.gid === 0));

  const third = await project(t);
  const roots = join(third, 'roots');
  await mkdir(roots);
  const setup = await restack(['setup-btrfs', '--size', '512M', roots]);
  if (setup.exitCode !== 0) {
    t.skip(`no loop-mounted btrfs here: ${String(setup.stderr).trim()}`);
    return;
  }
  try {
    const btrfs = await buildIn(third, '--storage', 'btrfs');
    assert.ok(btrfs.run.events.some((event) => event.event === 'step' && event.step === 'run'));
    assert.deepEqual(digests(btrfs.outputs), digests(one.outputs));
  } finally {
    await teardownBtrfs(roots);
  }
});
