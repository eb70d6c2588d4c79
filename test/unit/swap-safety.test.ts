/**
 * The overlap analysis a swap relies on. "No overlap" must mean that the layers above the
 * dependency have the same effect whichever version of it is below: they commute with the old
 * slice and with the new one, so the swapped image flattens to what the same layers give with the
 * dependency applied last, i.e. to what the layers above did without reading or hiding it.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { analyseOverlap, classifyTarEntry, type LayerChanges } from '../../src/swap/safety.ts';
import { prng } from './prng.ts';

type Spec = { name: string; type: 'file' | 'directory' | 'symlink' | 'link'; linkname?: string; content?: string };

const layer = (digest: string, specs: Spec[]): LayerChanges => ({ digest, entries: specs.map((spec) => classifyTarEntry(spec.name, spec.type, spec.linkname)) });
const file = (name: string, content = name): Spec => ({ name, type: 'file', content });
const dir = (name: string): Spec => ({ name, type: 'directory' });
const overlapsOf = (slice: Spec[], above: Spec[]) => analyseOverlap([layer('slice', slice)], [layer('above', above)]).overlaps.map((overlap) => overlap.path);

test('each shape the exact-string comparison missed is an overlap', () => {
  const cases: [string, Spec[], Spec[]][] = [
    ['a directory replaced by a symlink under a layer that writes into it', [{ name: 'usr/lib', type: 'symlink', linkname: 'lib64' }], [file('usr/lib/app.so')]],
    ['a whiteout of a directory the layer above writes into', [file('opt/.wh.tool')], [file('opt/tool/config')]],
    ['a whiteout above of a directory the dependency writes into', [file('opt/tool/bin')], [file('opt/.wh.tool')]],
    ['an opaque marker at the root', [file('.wh..wh..opq')], [file('srv/app')]],
    ['an opaque marker above, at the root', [file('usr/bin/python3')], [file('./.wh..wh..opq')]],
    ['a hard link to a file the dependency changes (or the new version removed)', [file('usr/lib/libpython.so')], [{ name: 'srv/lib.so', type: 'link', linkname: 'usr/lib/libpython.so' }]],
    ['a path written with ./ and //', [file('./usr//bin/python3')], [file('usr/bin//python3')]],
    ['a directory above over a file of the dependency', [file('etc/python')], [dir('etc/python/')]],
    ['a file above over a directory of the dependency', [dir('usr/share/python')], [file('usr/share/python')]],
  ];
  for (const [what, slice, above] of cases) assert.notDeepEqual(overlapsOf(slice, above), [], what);
  assert.deepEqual(overlapsOf([dir('usr'), file('usr/bin/python3')], [dir('usr/'), dir('usr/bin'), file('usr/bin/app')]), [], 'shared parent directories are not overlaps');
});

test('normalised names: ./, //, leading / and .. never above the root', () => {
  assert.deepEqual(classifyTarEntry('./a//b/./c/', 'directory'), { path: 'a/b/c', kind: 'directory' });
  assert.deepEqual(classifyTarEntry('/../../etc/.wh.passwd', 'file'), { path: 'etc/passwd', kind: 'whiteout' });
  assert.deepEqual(classifyTarEntry('./.wh..wh..opq', 'file'), { path: '', kind: 'opaque' });
  assert.deepEqual(classifyTarEntry('x', 'link', './a//b'), { path: 'x', kind: 'file', link: 'a/b' });
});

// ---- a model of layer application, to check the analysis against ----

type Node = { type: 'dir' } | { type: 'file'; content: string };
type Tree = Map<string, Node>;

const under = (path: string, top: string) => top === '' ? path !== '' : path.startsWith(`${top}/`);
const parents = (path: string) => path.split('/').slice(0, -1).map((_, index, parts) => parts.slice(0, index + 1).join('/'));

function remove(tree: Tree, path: string): void {
  for (const key of [...tree.keys()]) if (key === path || under(key, path)) tree.delete(key);
}

function put(tree: Tree, path: string, node: Node): void {
  for (const parent of parents(path)) {
    if (tree.get(parent)?.type === 'file') remove(tree, parent);
    tree.set(parent, { type: 'dir' });
  }
  const existing = tree.get(path);
  if (existing !== undefined && !(existing.type === 'dir' && node.type === 'dir')) remove(tree, path);
  tree.set(path, node);
}

/** OCI semantics: deletions (whiteouts, opaque directories) apply to the layers below, then the entries are written. */
function applyLayer(tree: Tree, specs: Spec[]): void {
  const entries = specs.map((spec) => ({ spec, entry: classifyTarEntry(spec.name, spec.type, spec.linkname) }));
  for (const { entry } of entries) {
    if (entry.kind === 'whiteout') remove(tree, entry.path);
    if (entry.kind === 'opaque') for (const key of [...tree.keys()]) if (under(key, entry.path)) tree.delete(key);
  }
  for (const { spec, entry } of entries) {
    if (entry.kind === 'directory') put(tree, entry.path, { type: 'dir' });
    if (entry.kind !== 'file' || entry.path === '') continue;
    const target = entry.link === undefined ? undefined : tree.get(entry.link);
    const content = entry.link === undefined ? `${spec.type}:${spec.content ?? spec.linkname}` : target?.type === 'file' ? target.content : `broken:${entry.link}`;
    put(tree, entry.path, { type: 'file', content });
  }
}

function flatten(...layers: Spec[][]): string {
  const tree: Tree = new Map();
  for (const specs of layers) applyLayer(tree, specs);
  return JSON.stringify([...tree.entries()].sort(([a], [b]) => a.localeCompare(b)));
}

function randomLayer(random: () => number, tag: string): Spec[] {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const path = () => Array.from({ length: 1 + Math.floor(random() * 3) }, () => pick(['a', 'b', 'c', 'd', 'e'])).join('/');
  // the same path written several ways: what the analysis must see as one
  const spell = (p: string) => pick([p, `./${p}`, p.replace('/', '//'), `/${p}`]);
  const specs: Spec[] = [];
  for (let count = 1 + Math.floor(random() * 4); count > 0; count--) {
    const p = path();
    const slash = p.lastIndexOf('/');
    const [parent, base] = slash < 0 ? ['', p] : [p.slice(0, slash), p.slice(slash + 1)];
    const prefix = parent === '' ? '' : `${parent}/`;
    switch (pick(['file', 'file', 'directory', 'symlink', 'link', 'whiteout', 'opaque'] as const)) {
      case 'file':
        specs.push({ name: spell(p), type: 'file', content: `${tag}${specs.length}` });
        break;
      case 'directory':
        specs.push({ name: `${spell(p)}/`, type: 'directory' });
        break;
      case 'symlink':
        specs.push({ name: spell(p), type: 'symlink', linkname: path() });
        break;
      case 'link':
        specs.push({ name: spell(p), type: 'link', linkname: spell(path()) });
        break;
      case 'whiteout':
        specs.push({ name: spell(`${prefix}.wh.${base}`), type: 'file' });
        break;
      case 'opaque':
        specs.push({ name: spell(`${random() < 0.3 ? '' : prefix}.wh..wh..opq`), type: 'file' });
        break;
    }
  }
  return specs;
}

test('property: when no overlap is found, the layers above commute with the old and the new slice (4,000 seeded stacks)', () => {
  const random = prng(0x5eed);
  let clean = 0;
  for (let run = 0; run < 4000; run++) {
    const [base, old, next, above] = ['b', 'o', 'n', 'u'].map((tag) => randomLayer(random, tag)) as [Spec[], Spec[], Spec[], Spec[]];
    const report = analyseOverlap([layer('old', old), layer('new', next)], [layer('above', above)]);
    if (report.overlaps.length > 0) continue;
    clean++;
    const context = JSON.stringify({ run, base, old, next, above });
    assert.equal(flatten(base, old, above), flatten(base, above, old), `old slice: ${context}`);
    assert.equal(flatten(base, next, above), flatten(base, above, next), `swapped: ${context}`);
  }
  assert.ok(clean > 500, `enough stacks without overlap to mean something (${clean})`);
});
