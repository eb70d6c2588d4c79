import assert from 'node:assert/strict';
import { chown } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { tempDir } from './helpers.ts';

const script = join(import.meta.dirname, 'userns-build.ts');

async function runUnshared(t: import('node:test').TestContext, namespace: string[], mode: 'lxc' | 'chroot', owner: number) {
  const dir = await tempDir(t);
  await chown(dir, owner, owner);
  const result = await execa('unshare', [...namespace, '--', process.execPath, script, dir, mode], { reject: false });
  if (result.exitCode !== 0 && /unshare failed|Operation not permitted/.test(result.stderr) && result.stdout === '') {
    t.skip(`user namespaces are not available here: ${result.stderr}`);
    return undefined;
  }
  assert.equal(result.exitCode, 0, result.stderr);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

const expectedLayer = ['directory bin/ 0', 'file bin/.wh.ls 0', 'file made 0'];

test("as in a pod with hostUsers: false: overlay storage and LXC without idmap, no loop devices", async (t) => {
  const podLike = ['--user', '--map-users=100000,0,65536', '--map-groups=100000,0,65536', '--setuid', '0', '--setgid', '0', '--mount', '--fork'];
  const report = await runUnshared(t, podLike, 'lxc', 100000);
  if (report === undefined) return;
  assert.deepEqual(report['identity'], { namespace: 'namespaced', idShift: { uid: 0, gid: 0, size: 65536 } });
  assert.equal(report['storage'], 'overlay');
  assert.deepEqual(report['run'], { ok: true });
  assert.deepEqual(report['layer'], expectedLayer);
  assert.deepEqual(report['deviceWarnings'], ['/dev/null: character-device 1:3 skipped: this user may not create device nodes']);
  assert.match(String(report['btrfs']), /cannot mount .* use --storage overlay/);
});

test('inside unshare --user --map-root-user --mount: the overlay driver unpacks, diffs and writes layers', async (t) => {
  const report = await runUnshared(t, ['--user', '--map-root-user', '--mount'], 'chroot', 0);
  if (report === undefined) return;
  assert.deepEqual(report['identity'], { namespace: 'namespaced', idShift: { uid: 0, gid: 0, size: 1 } });
  assert.equal(report['storage'], 'overlay');
  assert.deepEqual(report['layer'], expectedLayer);
});
