/**
 * The recipe loader on hostile and broken input: 10,000 seeded random mutations of the corpus
 * recipes (deleted and duplicated lines, values of other types, unicode, huge values, deep
 * nesting, alias bombs, broken indentation). Whatever the text, the loader answers with
 * diagnostics, each placed at FILE:LINE:COL; it never throws.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { formatDiagnostic } from '../../src/stackerfile/diagnostics.ts';
import { loadRecipes } from '../../src/stackerfile/load.ts';
import { prng } from './prng.ts';

const corpus = join(import.meta.dirname, '..', 'fixtures', 'recipes');
const recipes = readdirSync(corpus)
  .filter((name) => name.endsWith('.yaml'))
  .sort()
  .map((name) => ({ name, text: readFileSync(join(corpus, name), 'utf8') }));

/** Ten levels of ten aliases each: 10^9 strings if expanded. */
function aliasBomb(key: string): string {
  const lines = [`${key}0: &${key}0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]`];
  for (let level = 1; level < 10; level++) lines.push(`${key}${level}: &${key}${level} [${Array(10).fill(`*${key}${level - 1}`).join(', ')}]`);
  return lines.join('\n');
}

function mutate(text: string, random: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const lines = text.split('\n');
  const at = Math.floor(random() * lines.length);
  const depth = 1 + Math.floor(random() * 800);
  const values = [
    '[]',
    '{}',
    '123',
    '-1.5e309',
    'null',
    'true',
    '~',
    '"\u202e\u0301\ud83d\ude00 \u4e2d\u6587"',
    `"${'x'.repeat(200_000)}"`,
    '*nowhere',
    '&anchor value',
    '!!binary aGVsbG8=',
    '!custom tag',
    '"${{UNSET_VARIABLE}}"',
    '${{A:${{B}}}}',
    '|',
    `${'['.repeat(depth)}${']'.repeat(depth)}`,
    `${'{a: '.repeat(depth)}1${'}'.repeat(depth)}`,
  ];
  switch (pick(['delete', 'duplicate', 'value', 'unicode', 'indent', 'key', 'truncate', 'bomb', 'merge'] as const)) {
    case 'delete':
      lines.splice(at, 1);
      break;
    case 'duplicate':
      lines.splice(at, 0, lines[at] ?? '');
      break;
    case 'value': {
      const line = lines[at] ?? '';
      const colon = line.indexOf(': ');
      lines[at] = colon < 0 ? `${line} ${pick(values)}` : `${line.slice(0, colon + 2)}${pick(values)}`;
      break;
    }
    case 'unicode': {
      const line = lines[at] ?? '';
      const position = Math.floor(random() * (line.length + 1));
      lines[at] = `${line.slice(0, position)}${pick(['\u00e9', '\u200b', '\ufeff', '\t', '\u2028', '\ud83d\udca5', '\\', '"', "'", '#', ':', '- '])}${line.slice(position)}`;
      break;
    }
    case 'indent':
      lines[at] = random() < 0.5 ? `${' '.repeat(1 + Math.floor(random() * 5))}${lines[at] ?? ''}` : (lines[at] ?? '').replace(/^ {1,3}/, '');
      break;
    case 'key':
      lines[at] = (lines[at] ?? '').replace(/^(\s*)[^:\s]+:/, (_, indent: string) => `${indent}${pick(['from', 'run', 'apply', 'imports', 'import', 'config', 'a:b', '0', 'y', '<<', ''])}:`);
      break;
    case 'truncate':
      return text.slice(0, Math.floor(random() * text.length));
    case 'bomb':
      lines.push(aliasBomb(pick(['lol', 'a'])));
      break;
    case 'merge':
      lines.push('base: &base {from: {type: scratch}}', 'derived: {<<: *base, run: [true]}', 'loop: &loop {<<: *base}');
      break;
  }
  return lines.join('\n');
}

test('10,000 mutated corpus recipes: the loader never throws, and every diagnostic is at FILE:LINE:COL', async () => {
  const random = prng(0xf00d);
  for (let run = 0; run < 10_000; run++) {
    const { name, text } = recipes[run % recipes.length] as { name: string; text: string };
    let mutated = text;
    for (let times = 1 + Math.floor(random() * 3); times > 0; times--) mutated = mutate(mutated, random);
    const file = `/fuzz/${name}`;
    const loaded = await loadRecipes(file, {
      substitute: ['CENTOS_OCI=/c:latest', 'BUSYBOX_OCI=/b:latest'],
      readText: async (path) => {
        if (path === file) return mutated;
        throw Object.assign(new Error(`ENOENT: no such file, open '${path}'`), { code: 'ENOENT' });
      },
    }).catch((error: unknown) => assert.fail(`run ${run} (${name}) threw: ${String((error as Error).stack)}\n--- text ---\n${mutated.slice(0, 2000)}`));
    for (const diagnostic of loaded.diagnostics) {
      assert.match(formatDiagnostic(diagnostic), /^\S+:[1-9]\d*:[1-9]\d*: \S/, `run ${run} (${name}): ${formatDiagnostic(diagnostic).slice(0, 300)}`);
    }
    if (!loaded.ok) assert.ok(loaded.diagnostics.some((d) => d.severity === 'error'), `run ${run} (${name}): not ok without an error`);
  }
});

test('a billion-laughs alias bomb is refused with an error on the field, not expanded', async () => {
  const text = `${aliasBomb('lol')}\nA:\n  from: {type: scratch}\n  run: *lol9\n`;
  const loaded = await loadRecipes('/fuzz/bomb.yaml', { readText: async () => text });
  assert.equal(loaded.ok, false);
  const shown = loaded.diagnostics.map(formatDiagnostic);
  assert.ok(shown.some((line) => /^\/fuzz\/bomb\.yaml:\d+:\d+: lol\d: cannot be read: .*aliases/.test(line)), shown.join('\n'));
});
