import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { generatedFiles } from '../../src/operator/generated.ts';
import { stackerfileSpecSchema } from '../../src/operator/resources.ts';

const root = join(import.meta.dirname, '..', '..');

test('the committed CRDs, CRD reference and the chart\'s copies of config/ files are what npm run generate writes', () => {
  for (const [path, text] of generatedFiles()) {
    assert.equal(readFileSync(join(root, path), 'utf8'), text, `${path} is stale: run npm run generate`);
  }
});

test('CRD schemas are structural: no additionalProperties false, every object typed', () => {
  const walk = (node: unknown, path: string): void => {
    if (typeof node !== 'object' || node === null) return;
    const record = node as Record<string, unknown>;
    assert.notEqual(record['additionalProperties'], false, `${path}: additionalProperties false is not allowed`);
    if ('properties' in record) assert.equal(record['type'], 'object', `${path}: objects need type: object`);
    for (const [key, value] of Object.entries(record)) walk(value, `${path}.${key}`);
  };
  const crds = [...generatedFiles()].filter(([path]) => path.startsWith('crds/'));
  assert.equal(crds.length, 2);
  for (const [path, text] of crds) walk((parse(text) as { spec: unknown }).spec, path);
});

test('spec defaults fill in the design card policy', () => {
  const spec = stackerfileSpecSchema.parse({ recipe: 'a: {from: {type: scratch}}', output: { registry: 'reg.example/team' } });
  assert.deepEqual(spec.updates, { onApplyUpdate: 'Swap', onBaseUpdate: 'Rebuild' });
  assert.deepEqual(spec.output.tags, ['latest']);
  assert.deepEqual(spec.history, { succeeded: 10, failed: 5 });
});
