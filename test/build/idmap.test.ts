import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BuildError } from '../../src/build/errors.ts';
import { decideIdentity, isInitialUserNamespace, mappedIdCount, parseSubordinateIds } from '../../src/build/idmap.ts';

const initial = '         0          0 4294967295\n';

test('subordinate ranges are found by login or by numeric uid', () => {
  const text = 'alice:100000:65536\n1001:300000:65536\nbob:200000:1000\n\n# comment\n';
  assert.deepEqual(parseSubordinateIds(text, 'alice', 1000), [{ start: 100000, count: 65536 }]);
  assert.deepEqual(parseSubordinateIds(text, 'carol', 1001), [{ start: 300000, count: 65536 }]);
  assert.deepEqual(parseSubordinateIds(text, 'dave', 1002), []);
});

test('namespace maps tell the initial namespace from a pod and count usable ids', () => {
  assert.equal(isInitialUserNamespace(initial), true);
  assert.equal(isInitialUserNamespace('0 100000 65536\n'), false);
  assert.equal(mappedIdCount('0 100000 65536\n'), 65536);
  assert.equal(mappedIdCount('0 0 1\n'), 1);
  assert.equal(mappedIdCount('1 100000 10\n'), 0, 'container root must be mapped');
});

const cases = [
  {
    name: 'on a host, the first range of 65536 ids is used, uid and gid apart',
    sources: { uidMap: initial, gidMap: initial, subuid: 'root:1000:10\nroot:100000:65536\n', subgid: 'root:200000:65536\n', user: 'root', uid: 0 },
    identity: { namespace: 'host', idShift: { uid: 100000, gid: 200000, size: 65536 } },
  },
  {
    name: "inside a pod's user namespace nothing is shifted",
    sources: { uidMap: '0 100000 65536\n', gidMap: '0 100000 65536\n', subuid: '', subgid: '', user: 'root', uid: 0 },
    identity: { namespace: 'namespaced', idShift: { uid: 0, gid: 0, size: 65536 } },
  },
] as const;

for (const { name, sources, identity } of cases) {
  test(`identity: ${name}`, () => assert.deepEqual(decideIdentity(sources), identity));
}

test('a host user without subordinate ids is told what to add', () => {
  assert.throws(
    () => decideIdentity({ uidMap: initial, gidMap: initial, subuid: 'root:100000:65536\n', subgid: '', user: 'root', uid: 0 }),
    (error: BuildError) => {
      assert.equal(error.code, 'ID_RANGE_MISSING');
      assert.match(error.message, /\/etc\/subgid grants user root no range of 65536 subordinate ids/);
      assert.equal(error.hint, "give root a range of 65536 ids: echo 'root:100000:65536' >> /etc/subuid; echo 'root:100000:65536' >> /etc/subgid");
      return true;
    },
  );
});
