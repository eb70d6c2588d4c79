import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, readlink, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { BuildError } from '../../src/build/errors.ts';
import { refusedXattr, unpackLayer, type UnpackOptions } from '../../src/build/unpack.ts';
import { readXattrs } from '../../src/build/xattr.ts';
import { tarLayer, tempDir, type TarSpec, type TestLayer } from './helpers.ts';

async function apply(layer: TestLayer, root: string, options: Partial<UnpackOptions> = {}) {
  return unpackLayer(layer.stream(), { root, mediaType: layer.mediaType, digest: layer.digest, ...options });
}

async function applyEntries(entries: TarSpec[], root: string, options: Partial<UnpackOptions> = {}) {
  return apply(await tarLayer(entries), root, options);
}

async function tree(root: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of (await readdir(join(root, prefix), { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const path = prefix === '' ? entry.name : `${prefix}/${entry.name}`;
    out.push(entry.isDirectory() ? `${path}/` : path);
    if (entry.isDirectory()) out.push(...(await tree(root, path)));
  }
  return out;
}

test('files, directories, links, modes, times and shifted ownership are kept', async (t) => {
  const root = await tempDir(t);
  const summary = await applyEntries(
    [
      { name: 'etc', type: 'directory', mode: 0o750, uid: 0, gid: 0, mtime: new Date(1_000_000_000) },
      { name: 'etc/app.conf', content: 'x=1\n', mode: 0o640, uid: 1000, gid: 1001, mtime: new Date(1_500_000_000_000) },
      { name: 'etc/link', type: 'symlink', linkname: 'app.conf', uid: 7, gid: 8 },
      { name: 'etc/hard', type: 'link', linkname: 'etc/app.conf' },
      { name: 'usr/bin/tool', content: '#!/bin/sh\n', mode: 0o4755 },
    ],
    root,
    { idShift: { uid: 100000, gid: 200000, size: 65536 } },
  );
  const conf = await lstat(join(root, 'etc/app.conf'));
  assert.equal(await readFile(join(root, 'etc/app.conf'), 'utf8'), 'x=1\n');
  assert.equal(conf.mode & 0o7777, 0o640);
  assert.deepEqual([conf.uid, conf.gid], [101000, 201001]);
  assert.equal(conf.mtimeMs, 1_500_000_000_000);
  assert.equal(conf.nlink, 2, 'the hard link shares the inode');
  const dir = await lstat(join(root, 'etc'));
  assert.equal(dir.mode & 0o7777, 0o750);
  assert.equal(dir.mtimeMs, 1_000_000_000, 'directory times are set after their children are written');
  assert.equal(await readlink(join(root, 'etc/link')), 'app.conf');
  assert.deepEqual([(await lstat(join(root, 'etc/link'))).uid], [100007]);
  assert.equal((await lstat(join(root, 'usr/bin/tool'))).mode & 0o7777, 0o4755, 'setuid survives the chown');
  assert.deepEqual([(await lstat(join(root, 'usr'))).uid], [100000], 'implicit parents belong to container root');
  assert.deepEqual(summary.written.sort(), ['etc/app.conf', 'etc/hard', 'etc/link', 'usr/bin/tool']);
  assert.deepEqual(summary.directories, ['etc']);
  assert.equal(summary.entries, 5);
  assert.equal(summary.bytes, 14);
});

test('gzip, zstd and plain tar layers unpack, and the diff_id is checked', async (t) => {
  for (const compression of ['gzip', 'zstd', 'none'] as const) {
    const root = await tempDir(t);
    const layer = await tarLayer([{ name: 'f', content: compression }], compression);
    const summary = await apply(layer, root, { expectedDiffId: layer.diffId });
    assert.equal(summary.diffId, layer.diffId);
    assert.equal(await readFile(join(root, 'f'), 'utf8'), compression);
  }
  const root = await tempDir(t);
  const layer = await tarLayer([{ name: 'f', content: 'x' }]);
  const wrong = `sha256:${'0'.repeat(64)}`;
  await assert.rejects(apply(layer, root, { expectedDiffId: wrong }), (error: BuildError) => {
    assert.equal(error.code, 'DIFF_ID_MISMATCH');
    assert.match(error.message, new RegExp(layer.digest));
    return true;
  });
});

test('whiteouts delete lower files and opaque markers empty lower directories', async (t) => {
  const root = await tempDir(t);
  await applyEntries(
    [
      { name: 'a/x', content: '1' },
      { name: 'a/y', content: '2' },
      { name: 'b/z', content: '3' },
      { name: 'd/old', content: '4' },
      { name: 'd/sub/old2', content: '5' },
      { name: 'e/old', content: '6' },
    ],
    root,
  );
  const summary = await applyEntries(
    [
      { name: 'a/.wh.x' },
      { name: '.wh.b' },
      { name: 'd/.wh..wh..opq' },
      { name: 'd/new', content: '7' },
      { name: 'e/sub', type: 'directory' },
      { name: 'e/sub/kept', content: '8' },
      { name: 'e/.wh..wh..opq' },
      { name: '.wh.never-existed' },
    ],
    root,
  );
  assert.deepEqual(await tree(root), ['a/', 'a/y', 'd/', 'd/new', 'e/', 'e/sub/', 'e/sub/kept']);
  assert.deepEqual(summary.whiteouts, ['a/x', 'b', 'never-existed']);
  assert.deepEqual(summary.opaqueDirectories, ['d', 'e']);
});

test('overlay mode records whiteouts as 0/0 devices and opaque directories as xattrs', async (t) => {
  const root = await tempDir(t);
  const summary = await applyEntries([{ name: 'a/.wh.x' }, { name: 'd/.wh..wh..opq' }, { name: 'd/new', content: '7' }], root, { whiteouts: 'overlay' });
  const whiteout = await lstat(join(root, 'a/x'));
  assert.ok(whiteout.isCharacterDevice());
  assert.equal(whiteout.rdev, 0);
  const xattrs = await readXattrs([join(root, 'd')]);
  assert.equal(xattrs.get(join(root, 'd'))?.get('user.overlay.opaque')?.toString(), 'y');
  assert.deepEqual(summary.whiteouts, ['a/x']);
});

test('PAX xattrs are restored', async (t) => {
  const root = await tempDir(t);
  await applyEntries([{ name: 'f', content: 'x', pax: { 'SCHILY.xattr.user.origin': 'restack test' } }], root);
  const xattrs = await readXattrs([join(root, 'f')]);
  assert.equal(xattrs.get(join(root, 'f'))?.get('user.origin')?.toString(), 'restack test');
});

test('device nodes are created when this user may', async (t) => {
  const root = await tempDir(t);
  const summary = await applyEntries([{ name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 }, { name: 'fifo', type: 'fifo' }], root);
  const node = await lstat(join(root, 'dev/null'));
  if (summary.warnings.length > 0) {
    assert.match(summary.warnings[0] ?? '', /dev\/null: character-device 1:3 skipped/);
    return;
  }
  assert.ok(node.isCharacterDevice());
  assert.equal(node.rdev, 0x103);
  assert.ok((await lstat(join(root, 'fifo'))).isFIFO());
});

async function assertHostile(t: import('node:test').TestContext, entries: TarSpec[], pattern: RegExp) {
  const base = await tempDir(t);
  const root = join(base, 'rootfs');
  const outside = join(base, 'outside');
  await mkdir(root);
  await mkdir(outside);
  await writeFile(join(outside, 'secret'), 'untouched');
  const layer = await tarLayer(entries);
  await assert.rejects(apply(layer, root), (error: BuildError) => {
    assert.ok(error instanceof BuildError, String(error));
    assert.equal(error.code, 'LAYER_HOSTILE', error.message);
    assert.ok(error.message.includes(layer.digest), `names the layer: ${error.message}`);
    assert.match(error.message, pattern);
    return true;
  });
  assert.deepEqual(await readdir(outside), ['secret'], 'nothing was created beside the rootfs');
  assert.equal(await readFile(join(outside, 'secret'), 'utf8'), 'untouched');
  return { root, outside };
}

test('hostile layers are refused and the host is left untouched', async (t) => {
  await assertHostile(t, [{ name: '../outside/x', content: 'pwned' }], /entry "\.\.\/outside\/x": .*"\.\."/);
  await assertHostile(t, [{ name: 'ok', content: '1' }, { name: 'a/../../outside/secret', content: 'pwned' }], /a\/\.\.\/\.\.\/outside\/secret/);
  await assertHostile(
    t,
    [
      { name: 'evil', type: 'symlink', linkname: '../outside' },
      { name: 'evil/secret', content: 'pwned' },
    ],
    /entry "evil\/secret": .*climbs above the rootfs/,
  );
  await assertHostile(
    t,
    [
      { name: 'deep/evil', type: 'symlink', linkname: '../../../../../../../../' },
      { name: 'deep/evil/tmp/x', content: 'pwned' },
    ],
    /climbs above the rootfs/,
  );
  await assertHostile(t, [{ name: 'x', type: 'link', linkname: '../outside/secret' }], /entry "x": .*"\.\."/);
});

test('absolute names and absolute symlinks stay inside the rootfs, as the container would see them', async (t) => {
  const base = await tempDir(t);
  const root = join(base, 'rootfs');
  const outside = join(base, 'outside');
  await mkdir(root);
  await mkdir(outside);
  await applyEntries(
    [
      { name: '/abs/file', content: 'a' },
      { name: 'jump', type: 'symlink', linkname: outside },
      { name: 'jump/x', content: 'b' },
      { name: 'leaf', type: 'symlink', linkname: join(outside, 'leaf-target') },
      { name: 'leaf', content: 'replaced, not followed' },
    ],
    root,
  );
  assert.equal(await readFile(join(root, 'abs/file'), 'utf8'), 'a');
  assert.equal(await readFile(join(root, outside, 'x'), 'utf8'), 'b', 'the absolute symlink resolves inside the rootfs');
  assert.equal(await readFile(join(root, 'leaf'), 'utf8'), 'replaced, not followed');
  assert.deepEqual(await readdir(outside), []);
});

test('a hard link to a file outside the rootfs is refused', async (t) => {
  const base = await tempDir(t);
  await writeFile(join(base, 'secret'), 'host');
  const layer = await tarLayer([{ name: 'x', type: 'link', linkname: join(base, 'secret') }]);
  const root = await tempDir(t);
  await assert.rejects(apply(layer, root), (error: BuildError) => {
    assert.equal(error.code, 'LAYER_INVALID');
    assert.match(error.message, new RegExp(`layer ${layer.digest}: entry "x": hard link target .*secret does not exist in the rootfs`));
    return true;
  });
  assert.equal(existsSync(join(root, 'x')), false);
});

test('overlay mode: a hard link to a file of a lower layer becomes a copy of it', async (t) => {
  const lower = await tempDir(t);
  await applyEntries([{ name: 'usr/bin/tool', content: 'binary', mode: 0o755 }], lower, { whiteouts: 'overlay' });
  const upper = await tempDir(t);
  const summary = await applyEntries([{ name: 'usr/bin/alias', type: 'link', linkname: 'usr/bin/tool' }], upper, { whiteouts: 'overlay', lowerRoots: [lower] });
  assert.equal(await readFile(join(upper, 'usr/bin/alias'), 'utf8'), 'binary');
  assert.equal((await lstat(join(upper, 'usr/bin/alias'))).mode & 0o777, 0o755);
  assert.deepEqual(summary.written, ['usr/bin/alias']);
});

test('an xattr name with a line break cannot reach a path outside the rootfs', async (t) => {
  const base = await tempDir(t);
  const root = join(base, 'rootfs');
  const victim = join(base, 'outside', 'victim');
  await mkdir(root);
  await mkdir(join(base, 'outside'));
  await writeFile(victim, 'untouched');
  // setfattr --restore reads "# file:" lines: a name carrying one would set an xattr on the host path
  const layer = await tarLayer([{ name: 'f', content: 'x', pax: { [`SCHILY.xattr.\n# file: ${victim}\nuser.pwned`]: 'gotcha' } }]);
  const outcome = await apply(layer, root).then(
    () => undefined,
    (error: unknown) => error,
  );
  assert.equal((await readXattrs([victim])).get(victim)?.get('user.pwned')?.toString(), undefined, 'no xattr was set outside the rootfs');
  assert.ok(outcome instanceof BuildError, `refused: ${String(outcome)}`);
  assert.equal(outcome.code, 'LAYER_HOSTILE', outcome.message);
  assert.match(outcome.message, /entry "f": xattr name .* contains a line break/);
});

test('xattrs outside the allowed namespaces are left out with a warning', async (t) => {
  const root = await tempDir(t);
  const summary = await applyEntries(
    [
      {
        name: 'f',
        content: 'x',
        pax: { 'SCHILY.xattr.user.kept': 'yes', 'SCHILY.xattr.trusted.evil': '1', 'SCHILY.xattr.security.selinux': 'system_u:object_r:bin_t:s0', 'SCHILY.xattr.system.posix_acl_access': 'x' },
      },
    ],
    root,
  );
  const xattrs = (await readXattrs([join(root, 'f')])).get(join(root, 'f'));
  assert.deepEqual([...(xattrs?.keys() ?? [])], ['user.kept']);
  assert.deepEqual(summary.warnings.map((warning) => /xattr (\S+)/.exec(warning)?.[1]).sort(), ['security.selinux', 'system.posix_acl_access', 'trusted.evil']);
});

test('file capabilities are kept only inside a user namespace, where the kernel scopes them to its root', () => {
  assert.equal(refusedXattr('security.capability', true), undefined);
  assert.match(refusedXattr('security.capability', false) ?? '', /only when the build runs in a user namespace/);
  assert.equal(refusedXattr('user.mime_type', false), undefined);
  for (const name of ['trusted.overlay.redirect', 'user.overlay.opaque', 'security.selinux', 'security.ima', 'system.posix_acl_default']) {
    assert.ok(refusedXattr(name, true) !== undefined, name);
  }
});
