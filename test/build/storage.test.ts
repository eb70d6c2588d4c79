import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { detectIdentity, type BuildIdentity } from '../../src/build/idmap.ts';
import { writeLayer } from '../../src/build/layer-writer.ts';
import { runInContainer } from '../../src/build/lxc.ts';
import { setupBtrfs, teardownBtrfs } from '../../src/build/storage/btrfs-tools.ts';
import type { LayerSource, StorageDriver } from '../../src/build/storage/driver.ts';
import { openStorage, type StorageChoice } from '../../src/build/storage/open.ts';
import { busyboxLayer, layerSource, readTarEntries, tarLayer, tempDir } from './helpers.ts';

interface Fixture {
  storage: StorageDriver;
  identity: BuildIdentity;
  work: string;
  base: LayerSource[];
}

async function fixture(t: TestContext, root: string, choice: StorageChoice): Promise<Fixture> {
  const identity = await detectIdentity();
  const storage = await openStorage(root, choice, identity);
  const work = await tempDir(t);
  const config = await tarLayer([
    { name: 'etc', type: 'directory', mode: 0o755 },
    { name: 'etc/motd', content: 'hello\n' },
    { name: 'opt/old/file', content: 'hidden later' },
  ]);
  const update = await tarLayer([{ name: 'bin/.wh.stat' }, { name: 'opt/.wh..wh..opq' }, { name: 'opt/new', content: 'n' }, { name: 'etc/issue', type: 'link', linkname: 'etc/motd' }]);
  return { storage, identity, work, base: [layerSource(await busyboxLayer()), layerSource(config), layerSource(update)] };
}

async function run(f: Fixture, rootfs: string, layer: string, script: string, extra: { imports?: string } = {}) {
  const lines: string[] = [];
  const result = await runInContainer({
    layer,
    rootfs,
    script,
    identity: f.identity,
    lxcPath: join(f.work, 'lxc'),
    onLine: (line) => lines.push(line),
    ...(extra.imports === undefined ? {} : { imports: { source: extra.imports, at: '/stacker/imports' as const } }),
  });
  return { result, lines };
}

async function scenarioCachesLayers(f: Fixture) {
  const first = await f.storage.prepare(f.base);
  assert.equal(first.unpacked.length, 3);
  assert.deepEqual(first.unpacked[2]?.whiteouts, ['bin/stat']);
  assert.deepEqual(first.unpacked[2]?.opaqueDirectories, ['opt']);
  assert.equal((await f.storage.prepare(f.base)).unpacked.length, 0, 'a prepared chain is not unpacked again');
  const other = await tarLayer([{ name: 'opt/other', content: 'x' }]);
  const shared = await f.storage.prepare([f.base[0] as LayerSource, layerSource(other)]);
  assert.deepEqual(
    shared.unpacked.map((u) => u.digest),
    [other.digest],
    'a second image on the same base unpacks only its own layer',
  );
}

async function scenarioRunWritesOneFile(f: Fixture) {
  const working = await f.storage.createWorking(f.base, 'writer');
  const script = 'echo built > /made; cat /etc/issue; test ! -e /bin/stat; test ! -e /opt/old; test -e /opt/new';
  const { result, lines } = await run(f, working.rootfs, 'writer', script);
  assert.deepEqual(result, { ok: true });
  assert.deepEqual(lines, ['writer: hello']);
  assert.equal((await lstat(join(working.rootfs, 'made'))).uid, f.identity.idShift.uid, 'written as the container root');
  const diff = await f.storage.diff(working);
  assert.deepEqual(
    diff.entries.map((e) => `${e.kind} ${e.path}`),
    ['add made'],
    'LXC mount points created for the run are not part of the layer',
  );
  const layer = await writeLayer({ diff, directory: f.work, idShift: f.identity.idShift });
  const entries = await readTarEntries(await readFile(layer.path));
  assert.deepEqual(
    entries.map((e) => [e.name, e.uid, e.content]),
    [['made', 0, 'built\n']],
  );
  await f.storage.commit(working, layer.diffId);
  const next = [...f.base, { ...layerSource({ ...(await tarLayer([])), diffId: layer.diffId }), open: () => Promise.reject(new Error('must come from the cache')) }];
  assert.deepEqual((await f.storage.prepare(next)).unpacked, [], 'the committed rootfs is the cache entry of the new layer');
  const child = await f.storage.createWorking(next, 'child');
  assert.equal(await readFile(join(child.rootfs, 'made'), 'utf8'), 'built\n');
  await f.storage.discard(child);
}

async function scenarioDeletionBecomesWhiteout(f: Fixture) {
  const working = await f.storage.createWorking(f.base, 'deleter');
  const { result } = await run(f, working.rootfs, 'deleter', 'rm /bin/ls /etc/motd');
  assert.deepEqual(result, { ok: true });
  const layer = await writeLayer({ diff: await f.storage.diff(working), directory: f.work, idShift: f.identity.idShift });
  const names = (await readTarEntries(await readFile(layer.path))).map((e) => e.name);
  assert.deepEqual(names, ['bin/', 'bin/.wh.ls', 'etc/', 'etc/.wh.motd']);
  assert.deepEqual(layer.paths, ['bin', 'bin/ls', 'etc', 'etc/motd']);
  await f.storage.discard(working);
}

async function scenarioImportsAndFailure(f: Fixture) {
  const imports = join(f.work, 'imports');
  await mkdir(imports, { recursive: true });
  await writeFile(join(imports, 'greeting'), 'from an import\n');
  const working = await f.storage.createWorking(f.base, 'importer');
  const ok = await run(f, working.rootfs, 'importer', 'cp /stacker/imports/greeting /greeting; ! touch /stacker/imports/x 2>/dev/null', { imports });
  assert.deepEqual(ok.result, { ok: true }, ok.lines.join('\n'));
  assert.deepEqual(
    (await f.storage.diff(working)).entries.map((e) => e.path),
    ['greeting'],
    'the /stacker mount point is removed again',
  );
  const failed = await run(f, working.rootfs, 'importer', 'echo step one; echo to stderr >&2; false; echo never');
  assert.equal(failed.result.ok, false);
  if (failed.result.ok) return;
  assert.equal(failed.result.exitCode, 1);
  assert.deepEqual(failed.result.lastLines, ['step one', 'to stderr']);
  assert.match(failed.result.message, /layer importer: run failed with exit code 1; last 2 lines of output:\n {2}step one\n {2}to stderr/);
  const kept = await f.storage.discard(working, { keep: true });
  assert.equal(kept, working.rootfs);
  assert.equal(await readFile(join(kept, 'greeting'), 'utf8'), 'from an import\n', 'a failed rootfs is kept for inspection');
  await f.storage.cleanup();
  assert.equal(existsSync(join(kept, 'greeting')), false, 'cleanup removes kept working rootfs');
}

async function scenarios(t: TestContext, root: string, choice: StorageChoice, expectedKind: string) {
  const f = await fixture(t, root, choice);
  try {
    assert.equal(f.storage.kind, expectedKind);
    await t.test('layers are unpacked once and shared between chains', () => scenarioCachesLayers(f));
    await t.test('a run that writes a file gives a layer holding exactly that file', () => scenarioRunWritesOneFile(f));
    await t.test('a deletion in a run gives a whiteout', () => scenarioDeletionBecomesWhiteout(f));
    await t.test('imports are read-only; a failing run reports its exit code and last lines', () => scenarioImportsAndFailure(f));
  } finally {
    await f.storage.cleanup();
  }
}

test('overlay storage driver with LXC runs', async (t) => {
  const root = join(await tempDir(t), 'storage');
  await scenarios(t, root, 'auto', 'overlay');
  assert.deepEqual(await readdir(join(root, 'working')), []);
});

test('btrfs storage driver with LXC runs, on a loop-mounted btrfs', async (t) => {
  const dir = await tempDir(t);
  const root = join(dir, 'btrfs');
  try {
    await setupBtrfs({ dir: root, size: '512M' });
  } catch (error) {
    t.skip(`no loop-mounted btrfs here: ${(error as Error).message}`);
    return;
  }
  try {
    await scenarios(t, root, 'auto', 'btrfs');
  } finally {
    await teardownBtrfs(root);
  }
});

test('overlay: a layer whose hard link was copied from a lower layer is not reused on another chain', async (t) => {
  const storage = await openStorage(join(await tempDir(t), 'storage'), 'overlay', await detectIdentity());
  t.after(() => storage.cleanup());
  const lowerA = layerSource(await tarLayer([{ name: 'etc/motd', content: 'chain A\n' }]));
  const lowerB = layerSource(await tarLayer([{ name: 'etc/motd', content: 'chain B\n' }]));
  const linking = layerSource(await tarLayer([{ name: 'etc/issue', type: 'link', linkname: 'etc/motd' }]));
  const independent = layerSource(await tarLayer([{ name: 'srv/x', content: 'x' }]));
  await storage.prepare([lowerA, linking, independent]);
  const second = await storage.prepare([lowerB, linking, independent]);
  assert.deepEqual(second.unpacked.map((u) => u.digest), [lowerB.digest, linking.digest], 'the linking layer is unpacked again on the other chain; the independent one is shared');
  const working = await storage.createWorking([lowerB, linking, independent], 'chain-b');
  try {
    assert.equal(await readFile(join(working.rootfs, 'etc/issue'), 'utf8'), 'chain B\n');
  } finally {
    await storage.discard(working);
  }
});
