import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatDiagnostic, type Diagnostic } from '../../src/stackerfile/diagnostics.ts';
import { loadRecipes } from '../../src/stackerfile/load.ts';

/**
 * Every recipe under test/fixtures/recipes states in its header what a user must get: valid, or
 * the exact errors (line and field) and warnings. See test/fixtures/recipes/README.md.
 */
const corpus = join(import.meta.dirname, '..', 'fixtures', 'recipes');

interface Expectation {
  valid: boolean;
  substitute: string[];
  errors: string[];
  warnings: string[];
}

function expectationOf(text: string): Expectation {
  const header = text.split('\n').filter((line) => line.startsWith('# '));
  const values = (key: string) => header.filter((line) => line.startsWith(`# ${key}:`)).map((line) => line.slice(`# ${key}:`.length).trim());
  return {
    valid: values('expect').includes('valid'),
    // `@corpus` stands for the corpus folder, for recipes that need an absolute path.
    substitute: values('substitute').map((assignment) => assignment.replace('@corpus', corpus)),
    errors: values('expect-error').map(normalise),
    warnings: values('expect-warning').map(normalise),
  };
}

const normalise = (lineAndPath: string) => lineAndPath.replace(/\s+/g, ' ');
const lineAndPath = (d: Diagnostic) => `${d.position.line} ${d.path}`;

const files = readdirSync(corpus).filter((name) => name.endsWith('.yaml')).sort();

test('the corpus holds at least 40 recipes, valid and invalid', () => {
  assert.ok(files.length >= 40, `${files.length} recipes`);
  const kinds = files.map((name) => expectationOf(readFileSync(join(corpus, name), 'utf8')).valid);
  assert.ok(kinds.filter(Boolean).length >= 20 && kinds.filter((valid) => !valid).length >= 15);
});

for (const name of files) {
  test(`recipe ${name}`, async () => {
    const path = join(corpus, name);
    const expected = expectationOf(readFileSync(path, 'utf8'));
    assert.ok(expected.valid !== (expected.errors.length > 0), `${name}: header must say expect: valid or list expect-error lines`);
    const loaded = await loadRecipes(path, { substitute: expected.substitute });
    const shown = loaded.diagnostics.map(formatDiagnostic).join('\n');
    const errors = loaded.diagnostics.filter((d) => d.severity === 'error');
    const warnings = loaded.diagnostics.filter((d) => d.severity === 'warning');
    assert.equal(loaded.ok, expected.valid, shown);
    assert.deepEqual([...new Set(errors.map(lineAndPath))].sort(), [...new Set(expected.errors)].sort(), shown);
    if (expected.valid) assert.deepEqual(warnings.map(lineAndPath).sort(), expected.warnings.sort(), shown);
    for (const error of errors) {
      assert.match(formatDiagnostic(error), /^\S+:\d+:\d+: \S+: .{12,}/, 'every error says FILE:LINE:COL: path: and a sentence');
    }
  });
}
