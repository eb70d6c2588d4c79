import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseGetfattrDump, quoteAttrPath, readXattrs, unquoteAttrPath, writeXattrs } from '../../src/build/xattr.ts';
import { tempDir } from './helpers.ts';

test('getfattr path quoting round-trips spaces, line breaks, backslashes and UTF-8', () => {
  for (const path of ['/a b', '/line\nbreak', '/back\\slash', '/ünïcode/文件']) assert.equal(unquoteAttrPath(quoteAttrPath(path)), path);
  assert.equal(quoteAttrPath('/a b\n'), '/a\\040b\\012');
  assert.deepEqual(parseGetfattrDump('# file: /x\\040y\nuser.a=0x6869\nuser.empty\n\n'), new Map([['/x y', new Map([['user.a', Buffer.from('hi')], ['user.empty', Buffer.alloc(0)]])]]));
});

test('xattrs are written and read back in one process each, awkward names included', async (t) => {
  const dir = await tempDir(t);
  const paths = [join(dir, 'plain'), join(dir, 'with space'), join(dir, 'new\nline')];
  for (const path of paths) await writeFile(path, '');
  await writeXattrs(paths.map((path, i) => ({ path, name: 'user.n', value: Buffer.from(String(i)) })));
  const read = await readXattrs([...paths, join(dir, 'plain')]);
  assert.deepEqual(
    paths.map((path) => read.get(path)?.get('user.n')?.toString()),
    ['0', '1', '2'],
  );
});
