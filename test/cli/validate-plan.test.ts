import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { restack } from './restack.ts';

const seeds = join(import.meta.dirname, '..', 'fixtures', 'recipes', 'seeds-example.yaml');

test('--help lists every command, and each command has its own help', async () => {
  const help = await restack(['--help']);
  assert.equal(help.exitCode, 0);
  for (const command of ['validate', 'plan', 'inspect', 'swap', 'compose']) assert.match(help.stdout, new RegExp(`\\b${command}\\b`));
  const planHelp = await restack(['plan', '--help']);
  assert.match(planHelp.stdout, /--substitute-file/);
});

test("validate: the seeds' example is valid, with a one-line summary", async () => {
  const result = await restack(['validate', '-f', seeds]);
  assert.equal(result.exitCode, 0, result.stderr);
  assert.match(result.stdout, /valid: 3 layers \(ssl, python3, A\), 3 external inputs/);
});

test('validate: exit 1 and every error, each with FILE:LINE:COL, no stack trace', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'restack-cli-'));
  const file = join(dir, 'stacker.yaml');
  await writeFile(file, 'a:\n  from: {type: nope}\nb:\n  from: {type: built, tag: zz}\n  run: ${{X}}\n');
  const result = await restack(['validate', '-f', file]);
  assert.equal(result.exitCode, 1);
  const lines = result.stderr.trim().split('\n');
  assert.deepEqual(lines.map((line) => line.split(': ')[1]), ['a.from.type', 'b.from.tag', 'substitution', '3 errors']);
  assert.match(lines.at(-1) ?? '', /3 errors/);
  assert.doesNotMatch(result.stderr, /at .*\.ts:\d+/);
  const fixed = await restack(['validate', '-f', file, '--substitute', 'X=echo hi']);
  assert.equal(fixed.exitCode, 1, 'still invalid for the other errors');
  assert.doesNotMatch(fixed.stderr, /substitution/);
});

test('plan --json prints the documented shape', async () => {
  const result = await restack(['plan', '-f', seeds, '--json']);
  assert.equal(result.exitCode, 0, result.stderr);
  const plan = JSON.parse(result.stdout) as { order: string[]; layers: { name: string; dependsOn: string[]; buildOnly: boolean; apply: string[]; from: unknown }[]; inputs: { ref: string; role: string; usedBy: string[] }[] };
  assert.deepEqual(plan.order, ['ssl', 'python3', 'A']);
  assert.deepEqual(Object.keys(plan.layers[0] ?? {}), ['name', 'from', 'apply', 'dependsOn', 'buildOnly']);
  assert.deepEqual(plan.inputs.find((input) => input.role === 'from'), { ref: 'docker://centos:latest', role: 'from', type: 'docker', usedBy: ['ssl', 'python3', 'A'] });
});

test('an unknown command or a missing file is a clear error', async () => {
  const unknown = await restack(['frobnicate']);
  assert.equal(unknown.exitCode, 2);
  assert.match(unknown.stderr, /unknown command/);
  const missing = await restack(['validate', '-f', '/nonexistent/stacker.yaml']);
  assert.equal(missing.exitCode, 1);
  assert.match(missing.stderr, /cannot read the recipe: no such file/);
});
