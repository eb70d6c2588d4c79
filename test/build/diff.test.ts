import assert from 'node:assert/strict';
import { chmod, mkdir, rm, symlink, writeFile, open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { sortDiffEntries, type DiffEntry } from '../../src/build/diff/entries.ts';
import { diffSnapshots } from '../../src/build/diff/snapshot-compare.ts';
import { createSubvolume, setupBtrfs, snapshotSubvolume, teardownBtrfs } from '../../src/build/storage/btrfs-tools.ts';
import { writeXattrs } from '../../src/build/xattr.ts';
import { tempDir } from './helpers.ts';

test('diff entries sort component-wise, opaque markers first in their directory', () => {
  const add = (path: string): DiffEntry => ({ kind: 'add', path, source: `/x/${path}`, xattrs: new Map() });
  const sorted = sortDiffEntries([add('a-b'), add('a/z'), { kind: 'whiteout', path: 'a/gone' }, { kind: 'opaque', path: 'a' }, add('a'), add('a/.hidden'), add('B')]);
  assert.deepEqual(
    sorted.map((e) => `${e.kind} ${e.path}`),
    ['add B', 'add a', 'opaque a', 'add a/.hidden', 'whiteout a/gone', 'add a/z', 'add a-b'],
  );
});

test('btrfs snapshot comparison finds content, mode, xattr, type and deletion changes', async (t) => {
  const dir = await tempDir(t);
  const mount = join(dir, 'btrfs');
  try {
    await setupBtrfs({ dir: mount, size: '256M' });
  } catch (error) {
    t.skip(`no loop-mounted btrfs here: ${(error as Error).message}`);
    return;
  }
  try {
    const parent = join(mount, 'parent');
    await createSubvolume(parent);
    for (const d of ['same', 'edit', 'gone/deep', 'replaced', 'meta']) await mkdir(join(parent, d), { recursive: true });
    const files: Record<string, string> = {
      'same/file': 'unchanged',
      'edit/same-size': 'aaaa',
      'edit/chmod': 'x',
      'edit/xattr': 'x',
      'gone/deep/file': 'x',
      'replaced/old': 'x',
      'file-to-dir': 'x',
    };
    for (const [path, content] of Object.entries(files)) await writeFile(join(parent, path), content);
    await symlink('same/file', join(parent, 'link'));
    const child = join(mount, 'child');
    await snapshotSubvolume(parent, child);
    assert.equal((await stat(join(child, 'same/file'))).ino, (await stat(join(parent, 'same/file'))).ino, 'snapshots keep inode numbers');

    const handle = await open(join(child, 'edit/same-size'), 'r+');
    await handle.write('bbbb', 0);
    await handle.close();
    await chmod(join(child, 'edit/chmod'), 0o600);
    await writeXattrs([{ path: join(child, 'edit/xattr'), name: 'user.tag', value: Buffer.from('v') }]);
    await rm(join(child, 'gone'), { recursive: true });
    await rm(join(child, 'replaced'), { recursive: true });
    await mkdir(join(child, 'replaced'));
    await writeFile(join(child, 'replaced/new'), 'x');
    await rm(join(child, 'file-to-dir'));
    await mkdir(join(child, 'file-to-dir'));
    await chmod(join(child, 'meta'), 0o700);
    await rm(join(child, 'link'));
    await symlink('edit', join(child, 'link'));

    const diff = await diffSnapshots(parent, child);
    assert.deepEqual(
      diff.entries.map((e) => `${e.kind} ${e.path}`),
      [
        'whiteout gone',
        'add edit',
        'add edit/chmod',
        'add edit/same-size',
        'add edit/xattr',
        'add file-to-dir',
        'add link',
        'add meta',
        'add replaced',
        'whiteout replaced/old',
        'add replaced/new',
      ],
      'in tar order: a whiteout sorts by its .wh. name',
    );
    const xattrEntry = diff.entries.find((e) => e.path === 'edit/xattr');
    assert.equal(xattrEntry?.kind === 'add' ? xattrEntry.xattrs.get('user.tag')?.toString() : undefined, 'v');
  } finally {
    await teardownBtrfs(mount);
  }
});
