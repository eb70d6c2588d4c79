import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { formatDiagnostic } from '../../src/stackerfile/diagnostics.ts';
import { loadRecipes } from '../../src/stackerfile/load.ts';
import { checkReferences, parseRecipe } from '../../src/stackerfile/parse.ts';
import { planRecipes } from '../../src/stackerfile/plan.ts';

const seeds = `ssl:     {from: {type: docker, url: "docker://centos:latest"}, run: [yum install openssl]}
python3: {from: {type: docker, url: "docker://centos:latest"}, run: [yum install python3]}
A:
  from: {type: docker, url: "docker://centos:latest"}
  apply: ["docker://ssl:latest", "docker://python3:latest"]
  run: [git clone https://example.com/A, ./A/install]
`;

function errors(text: string, substitutions: Record<string, string> = {}): string[] {
  const { recipe, diagnostics } = parseRecipe(text, { file: 'r.yaml', substitutions: new Map(Object.entries(substitutions)) });
  const all = recipe === undefined ? diagnostics : [...diagnostics, ...checkReferences(recipe, new Set())];
  return all.filter((d) => d.severity === 'error').map(formatDiagnostic);
}

async function load(files: Record<string, string>, main = 'stacker.yaml') {
  const dir = await mkdtemp(join(tmpdir(), 'restack-recipe-'));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  return loadRecipes(join(dir, main));
}

test("the seeds' example plans ssl, python3, A with centos an input of all three", async () => {
  const loaded = await load({ 'stacker.yaml': seeds });
  assert.equal(loaded.ok, true);
  const plan = planRecipes(loaded.recipes);
  assert.deepEqual(plan.order, ['ssl', 'python3', 'A']);
  assert.deepEqual(plan.inputs, [
    { ref: 'docker://centos:latest', role: 'from', type: 'docker', usedBy: ['ssl', 'python3', 'A'] },
    { ref: 'docker://ssl:latest', role: 'apply', type: 'docker', usedBy: ['A'] },
    { ref: 'docker://python3:latest', role: 'apply', type: 'docker', usedBy: ['A'] },
  ]);
});

test('built bases and applied layer names order the build regardless of file order', async () => {
  const loaded = await load({
    'stacker.yaml': `top:\n  from: {type: built, tag: mid}\n  apply: [lib]\nmid:\n  from: {type: built, tag: base}\nlib:\n  from: {type: scratch}\nbase:\n  from: {type: tar, url: rootfs.tar}\n  build_only: true\n`,
  });
  assert.equal(loaded.ok, true, loaded.diagnostics.map(formatDiagnostic).join('\n'));
  const plan = planRecipes(loaded.recipes);
  assert.deepEqual(plan.order, ['lib', 'base', 'mid', 'top']);
  assert.deepEqual(plan.layers.find((l) => l.name === 'top')?.dependsOn, ['mid', 'lib']);
  assert.deepEqual(plan.inputs, [{ ref: 'rootfs.tar', role: 'from', type: 'tar', usedBy: ['base'] }]);
});

test('a stacker:// import orders the build after the layer it reads, and importing from itself is an error', async () => {
  const loaded = await load({ 'stacker.yaml': 'user:\n  from: {type: scratch}\n  imports: [stacker://maker/out, {path: "stacker://maker/more"}]\nmaker:\n  from: {type: scratch}\n' });
  assert.equal(loaded.ok, true, loaded.diagnostics.map(formatDiagnostic).join('\n'));
  assert.deepEqual(planRecipes(loaded.recipes).order, ['maker', 'user']);
  assert.match(errors('a:\n  from: {type: scratch}\n  imports: stacker://a/x\n')[0] ?? '', /a\.imports: layer "a" cannot import from itself/);
});

test('every error in a file is reported with FILE:LINE:COL and the field path', () => {
  const found = errors('a:\n  from:\n    type: dockr\n  runn: x\nb:\n  from: {type: docker}\n  os:\n');
  assert.deepEqual(found, [
    'r.yaml:3:5: a.from.type: must be one of docker, oci, tar, built, scratch',
    'r.yaml:4:3: a.runn: unknown directive "runn"; did you mean "run"?',
    'r.yaml:6:3: b.from.url: is required for type docker: docker://host/repo:tag',
    'r.yaml:7:3: b.os: expected an operating system such as linux, got nothing',
  ]);
});

test('broken YAML, a list at the top and an empty file each have their own message', () => {
  assert.match(errors('a: [1, 2\n')[0] ?? '', /^r\.yaml:\d+:\d+: yaml: invalid YAML/);
  assert.match(errors('- a\n- b\n')[0] ?? '', /^r\.yaml:1:1: \(top\): the top level must be a map.*not a list/);
  assert.match(errors('')[0] ?? '', /the recipe is empty/);
});

test('a built base naming no layer, apply of itself and cycles are reported on each layer involved', () => {
  assert.match(errors('a: {from: {type: built, tag: nope}}\n')[0] ?? '', /a\.from\.tag: built base "nope" names no layer/);
  assert.match(errors('a: {from: {type: scratch}, apply: [a]}\n')[0] ?? '', /a\.apply\.0: layer "a" cannot apply itself/);
  const cycle = errors('a: {from: {type: built, tag: b}}\nb:\n  from: {type: scratch}\n  apply: [a]\n');
  assert.deepEqual(cycle, [
    'r.yaml:1:25: a.from.tag: dependency cycle: a -> b -> a; one of these layers must use a base from outside the cycle',
    'r.yaml:4:11: b.apply.0: dependency cycle: a -> b -> a; one of these layers must use a base from outside the cycle',
  ]);
});

test('the same reference applied twice is an error on the second entry; two tags of one repository are two inputs', () => {
  assert.deepEqual(errors('a:\n  from: {type: scratch}\n  apply: ["docker://r/tools:jq", "docker://r/tools:yq", "docker://r/tools:jq"]\n'), [
    'r.yaml:3:57: a.apply.2: "docker://r/tools:jq" is applied twice (also entry 0); apply each image once',
  ]);
});

test('imports accept every stacker form and check hash and dest', () => {
  const ok = `a:\n  from: {type: scratch}\n  imports:\n    - file\n    - path: https://x/y\n      hash: ${'A'.repeat(64)}\n      dest: /usr/bin/y\n      mode: 0755\n      uid: 0\n`;
  const { recipe } = parseRecipe(ok, { file: 'r.yaml', substitutions: new Map() });
  const imports = recipe?.layers.get('a')?.imports;
  assert.ok(Array.isArray(imports));
  assert.deepEqual(imports[1], { path: 'https://x/y', hash: 'A'.repeat(64), dest: '/usr/bin/y', mode: 0o755, uid: 0 });
  const bad = errors('a:\n  from: {type: scratch}\n  imports: [{path: f, hash: abc, dest: rel}]\n');
  assert.equal(bad.length, 2);
  assert.match(bad[0] ?? '', /a\.imports\.0\.hash: must be the sha256/);
  assert.match(bad[1] ?? '', /a\.imports\.0\.dest: must be an absolute path/);
});

test('the deprecated import is accepted with a warning, and cannot be combined with imports', () => {
  const { recipe, diagnostics } = parseRecipe('a: {from: {type: scratch}, import: [f]}\n', { file: 'r.yaml', substitutions: new Map() });
  assert.ok(recipe?.layers.has('a'));
  assert.deepEqual(diagnostics.map((d) => [d.severity, d.path]), [['warning', 'a.import']]);
  assert.match(errors('a: {from: {type: scratch}, import: [f], imports: [g]}\n')[0] ?? '', /a\.import: cannot be combined with imports/);
});

test('errors after a substitution point at the original line and column', () => {
  const found = errors('a:\n  from: {url: ${{U}}, type: bad}\n', { U: 'docker://registry.example/a/long/name:tag' });
  assert.deepEqual(found, ['r.yaml:2:23: a.from.type: must be one of docker, oci, tar, built, scratch']);
});

test('prerequisites make their layers available to built bases and come first in the plan', async () => {
  const loaded = await load({
    'base.yaml': 'base: {from: {type: scratch}}\n',
    'stacker.yaml': 'config:\n  prerequisites: [base.yaml]\napp: {from: {type: built, tag: base}}\n',
  });
  assert.equal(loaded.ok, true, loaded.diagnostics.map(formatDiagnostic).join('\n'));
  assert.deepEqual(planRecipes(loaded.recipes).order, ['base', 'app']);
  const missing = await load({ 'stacker.yaml': 'config:\n  prerequisites: [nope.yaml]\napp: {from: {type: scratch}}\n' });
  assert.match(missing.diagnostics.map(formatDiagnostic).join('\n'), /stacker\.yaml:2:19: config\.prerequisites\.0: cannot read prerequisite "nope\.yaml".*no such file/);
});

test('config accepts only prerequisites', () => {
  assert.match(errors('config: {prerequisites: [], other: 1}\na: {from: {type: scratch}}\n')[0] ?? '', /config\.other: unknown directive "other"/);
});
