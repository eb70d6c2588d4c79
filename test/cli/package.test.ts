// The package as a user installs it: npm pack, npm install -g into a fresh prefix, and the
// installed `restack` run from another directory, on the pinned Node and on an older one.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { execa } from 'execa';

const root = join(import.meta.dirname, '..', '..');
const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
// npm and the installed command run on the Node that runs the tests: the one package.json pins.
const pinnedPath = `${dirname(process.execPath)}${delimiter}${process.env['PATH'] ?? ''}`;

let work: string;
let installed: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'restack-package-'));
  const pack = await execa('npm', ['pack', '--pack-destination', work, '--json'], { cwd: root, env: { PATH: pinnedPath } });
  const [{ filename }] = JSON.parse(pack.stdout) as [{ filename: string }];
  const tarball = join(work, filename);
  await execa('npm', ['install', '--global', '--prefix', join(work, 'prefix'), '--prefer-offline', '--no-audit', '--no-fund', tarball], {
    cwd: work,
    env: { PATH: pinnedPath },
  });
  installed = join(work, 'prefix', 'bin', 'restack');
});

after(async () => {
  if (work !== undefined) await rm(work, { recursive: true, force: true });
});

test('the tarball holds the launcher and compiled JavaScript, not the TypeScript sources or tests', async () => {
  const files = (await readdir(join(work, 'prefix', 'lib', 'node_modules', 'restack'), { recursive: true })).map(String);
  assert.ok(files.includes(join('dist', 'cli', 'main.js')), 'dist/cli/main.js is installed');
  assert.ok(files.includes(join('bin', 'restack.js')));
  assert.deepEqual(files.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts') && !file.startsWith('node_modules')), []);
  assert.ok(!files.some((file) => file.startsWith('test')), 'no tests shipped');
});

test('the installed restack runs from any directory on the pinned Node: --version, validate, plan', async () => {
  const project = await mkdtemp(join(work, 'project-'));
  await writeFile(join(project, 'stacker.yaml'), 'base:\n  from:\n    type: oci\n    url: oci:base:latest\n  run: [echo hello]\napp:\n  from:\n    type: built\n    tag: base\n  run: [echo app]\n');
  const env = { PATH: pinnedPath };
  const versionRun = await execa(installed, ['--version'], { cwd: project, env, reject: false });
  assert.equal(versionRun.exitCode, 0, versionRun.stderr);
  assert.equal(versionRun.stdout.trim(), version);

  const validate = await execa(installed, ['validate', '-f', 'stacker.yaml'], { cwd: project, env, reject: false });
  assert.equal(validate.exitCode, 0, validate.stderr);
  const plan = await execa(installed, ['plan', '-f', 'stacker.yaml', '--json'], { cwd: project, env, reject: false });
  assert.equal(plan.exitCode, 0, plan.stderr);
  assert.match(plan.stdout, /"app"/);

  const invalid = await execa(installed, ['validate', '-f', 'missing.yaml'], { cwd: project, env, reject: false });
  assert.notEqual(invalid.exitCode, 0);
  assert.match(invalid.stderr, /missing\.yaml/);
});

const oldNode = ['/usr/bin/node', '/usr/local/bin/node'].find((path) => existsSync(path) && path !== process.execPath);

test('on a Node.js older than 22.19 the installed restack says what it needs and exits 1', async (t) => {
  if (oldNode === undefined) return t.skip('no other Node.js on this machine to try');
  const { stdout } = await execa(oldNode, ['-p', 'process.versions.node']);
  const [major = 0, minor = 0] = stdout.split('.').map(Number);
  if (major > 22 || (major === 22 && minor >= 19)) return t.skip(`${oldNode} is ${stdout}, new enough`);
  const run = await execa(oldNode, [installed, '--version'], { reject: false });
  assert.equal(run.exitCode, 1);
  assert.match(run.stderr, /needs Node\.js 22\.19 or later/);
  assert.match(run.stderr, new RegExp(`is v${stdout.replaceAll('.', '\\.')}`));
});
