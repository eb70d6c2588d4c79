import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { doctorPassed, runDoctor } from '../../src/build/doctor.ts';
import { tempDir } from './helpers.ts';

const cli = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

test('on this machine every required prerequisite is met', async (t) => {
  const checks = await runDoctor({ storageRoot: await tempDir(t) });
  const failed = checks.filter((check) => check.required && !check.ok);
  assert.deepEqual(failed, []);
  assert.ok(doctorPassed(checks));
  const names = checks.map((check) => check.check);
  for (const name of ['zstd in node:zlib', 'build user namespace', 'lxc-execute', 'overlayfs with userxattr', 'loop devices', 'storage root']) assert.ok(names.includes(name), name);
  assert.match(checks.find((check) => check.check === 'storage root')?.detail ?? '', /not on btrfs; auto picks overlay/);
});

test('missing tools fail with the package to install', async (t) => {
  const checks = await runDoctor({ storageRoot: await tempDir(t), storage: 'btrfs', path: '/nonexistent' });
  const byName = new Map(checks.map((check) => [check.check, check]));
  assert.deepEqual(byName.get('lxc-execute'), {
    check: 'lxc-execute',
    ok: false,
    detail: 'not found; runs the run: steps in an unprivileged container',
    fix: 'install it: apt-get install -y lxc',
    required: true,
  });
  assert.equal(byName.get('btrfs')?.required, true, 'btrfs-progs is required once btrfs storage is asked for');
  assert.equal(byName.get('btrfs')?.fix, 'install it: apt-get install -y btrfs-progs');
  assert.match(byName.get('storage root')?.fix ?? '', /^restack setup-btrfs --size 20G /);
  assert.equal(doctorPassed(checks), false);
});

test('overlayfs is probed in the storage directory builds will use, not in TMPDIR (in a pod, /tmp is the container\'s overlayfs)', async (t) => {
  // A TMPDIR on overlayfs, like a container's /tmp: an overlay cannot take its upper directory there.
  const dir = await tempDir(t);
  for (const sub of ['lower', 'upper', 'work', 'tmp']) await mkdir(join(dir, sub));
  await execa('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${dir}/lower,upperdir=${dir}/upper,workdir=${dir}/work`, join(dir, 'tmp')]);
  const cwd = await tempDir(t);
  const doctor = await execa(process.execPath, [cli, 'doctor', '--json'], { cwd, env: { TMPDIR: join(dir, 'tmp') }, reject: false }).finally(() => execa('umount', [join(dir, 'tmp')]));
  const overlay = (JSON.parse(doctor.stdout) as { checks: { check: string; ok: boolean; detail: string }[] }).checks.find((check) => check.check === 'overlayfs with userxattr');
  assert.deepEqual(overlay, { check: 'overlayfs with userxattr', ok: true, detail: `mounted and unmounted an overlay in ${join(cwd, '.restack', 'roots')}`, required: true });
});
