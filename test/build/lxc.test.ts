import assert from 'node:assert/strict';
import { chmod, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { BuildError } from '../../src/build/errors.ts';
import { detectIdentity } from '../../src/build/idmap.ts';
import { openShell, runInContainer, type RunOptions } from '../../src/build/lxc.ts';
import { makeRootDirectory } from '../../src/build/storage/cache.ts';
import { unpackLayer } from '../../src/build/unpack.ts';
import { busyboxLayer, tempDir } from './helpers.ts';

async function busyboxContainer(t: TestContext): Promise<Omit<RunOptions, 'script'>> {
  const dir = await tempDir(t);
  const identity = await detectIdentity();
  const rootfs = join(dir, 'rootfs');
  await makeRootDirectory(rootfs, identity.idShift);
  const layer = await busyboxLayer();
  await unpackLayer(layer.stream(), { root: rootfs, mediaType: layer.mediaType, digest: layer.digest, idShift: identity.idShift });
  return { layer: 'tiny', rootfs, identity, lxcPath: join(dir, 'lxc') };
}

test('a run streams prefixed lines, sees the build environment and keeps its files', async (t) => {
  const container = await busyboxContainer(t);
  const lines: string[] = [];
  const result = await runInContainer({
    ...container,
    environment: { GREETING: 'hello world' },
    script: 'echo "$GREETING"; id -u; echo $HOME; test -r /proc/self/status; ! touch /sys/x 2>/dev/null; echo done > /out',
    onLine: (line) => lines.push(line),
  });
  assert.deepEqual(result, { ok: true }, lines.join('\n'));
  assert.deepEqual(lines, ['tiny: hello world', 'tiny: 0', 'tiny: /root']);
  const out = await stat(join(container.rootfs, 'out'));
  assert.equal(out.uid, container.identity.idShift.uid);
  assert.equal(await readFile(join(container.rootfs, 'out'), 'utf8'), 'done\n');
});

test('sh -e: the first failing command fails the run, with exit code and the last 20 lines', async (t) => {
  const container = await busyboxContainer(t);
  const result = await runInContainer({ ...container, script: 'for i in $(seq 1 30); do echo line $i; done; (exit 7); echo unreachable > /unreachable' });
  assert.equal(result.ok, false);
  if (result.ok) return;
  assert.equal(result.exitCode, 7);
  assert.equal(result.lastLines.length, 20);
  assert.equal(result.lastLines[0], 'line 11');
  assert.equal(result.lastLines[19], 'line 30');
  assert.match(result.message, /^layer tiny: run failed with exit code 7; last 20 lines of output:\n {2}line 11\n/);
  await assert.rejects(stat(join(container.rootfs, 'unreachable')));
});

test('a container that cannot start says so', async (t) => {
  const container = await busyboxContainer(t);
  const result = await runInContainer({ ...container, imports: { source: '/nonexistent/imports', at: '/stacker/imports' }, script: 'true' });
  assert.equal(result.ok, false);
  if (!result.ok) assert.match(result.message, /the build container did not start .*restack doctor/, result.message);
});

test('the shell opened on failure runs in the same container', async (t) => {
  const container = await busyboxContainer(t);
  const { exitCode, output } = await openShell(container, { input: 'echo $((6 * 7)); exit 3\n' });
  assert.equal(exitCode, 3);
  assert.equal(output.trim(), '42');
});

test('a rootfs the mapped root cannot reach is refused with the chmod to run', async (t) => {
  const container = await busyboxContainer(t);
  const locked = join(container.rootfs, '..');
  await chmod(locked, 0o700);
  await assert.rejects(runInContainer({ ...container, script: 'true' }), (error: BuildError) => {
    assert.equal(error.code, 'ROOTFS_NOT_REACHABLE');
    assert.match(error.hint ?? '', new RegExp(`chmod o\\+x ${locked.replace(/\/\.\.$/, '')}`));
    return true;
  });
});

test('a rootfs without /bin/sh is refused before LXC starts', async (t) => {
  const container = await busyboxContainer(t);
  await assert.rejects(runInContainer({ ...container, rootfs: join(container.rootfs, 'tmp'), script: 'true' }), (error: BuildError) => {
    assert.equal(error.code, 'ROOTFS_NO_SHELL');
    assert.match(error.message, /layer tiny: the rootfs has no \/bin\/sh/);
    return true;
  });
});
