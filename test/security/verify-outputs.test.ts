// Hostile input, a build pod's result: what provenance a published layer may carry, decided from
// the recipe alone (the registry side is in test/operator/pod-executor.test.ts, with forged
// termination messages under kwok).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateRecipe } from '../../src/operator/recipe-source.ts';
import { expectedOutputs, provenanceProblem } from '../../src/operator/verify-outputs.ts';
import { planRecipes } from '../../src/stackerfile/plan.ts';
import type { Provenance } from '../../src/swap/provenance.ts';

const recipe = [
  'tools:\n  from: {type: docker, url: "docker://registry.example/base:1"}\n  build_only: true\n',
  'ssl:\n  from: {type: built, tag: tools}\n',
  'A:\n  from: {type: tar, url: "https://example.com/rootfs.tar"}\n  apply: [ssl, "docker://registry.example/python3:3"]\n',
].join('');

const provenance = (base: string | null, applied: string[]): Provenance => ({
  version: 1,
  base: base === null ? null : { ref: base, digest: 'sha256:1', layers: { start: 0, count: 1 } },
  applied: applied.map((ref, index) => ({ ref, digest: 'sha256:2', layers: { start: 1 + index, count: 1 }, base: { count: 1, chain: '' } })),
  own: { layers: { start: 1 + applied.length, count: 0 } },
});

test('published layers, their refs, and the inputs their provenance must name, from the recipe', async () => {
  const loaded = await validateRecipe(recipe, 'team/app.stacker.yaml');
  assert.equal(loaded.ok, true);
  const expected = expectedOutputs(planRecipes(loaded.recipes), 'registry.example/team', ['v2', 'latest'], '/var/lib/restack/oci');
  assert.deepEqual([...expected.keys()], ['ssl', 'A'], 'build_only layers are not published');
  const ssl = expected.get('ssl');
  const a = expected.get('A');
  assert.ok(ssl !== undefined && a !== undefined);
  assert.equal(a.ref, 'registry.example/team/a:v2');
  assert.equal(provenanceProblem(ssl, provenance('oci:/var/lib/restack/oci:tools', [])), undefined, 'a build_only base is the build\'s own layout');
  assert.equal(provenanceProblem(ssl, provenance('oci:/etc/restack:tools', [])), 'its provenance names the base oci:/etc/restack:tools, the recipe\'s is oci:/var/lib/restack/oci:tools', 'a layout elsewhere, which the operator would read');
  assert.equal(provenanceProblem(a, provenance(null, ['docker://registry.example/team/ssl:v2', 'docker://registry.example/python3:3'])), undefined);

  assert.equal(provenanceProblem(a, undefined), 'the image has no restack provenance');
  assert.equal(provenanceProblem(ssl, provenance('docker://registry.example/base:1', [])), 'its provenance names the base docker://registry.example/base:1, the recipe\'s is oci:/var/lib/restack/oci:tools');
  assert.equal(provenanceProblem(a, provenance('docker://evil.example/base:1', ['docker://registry.example/team/ssl:v2', 'docker://registry.example/python3:3'])), 'its provenance names the base docker://evil.example/base:1, the recipe\'s is none');
  assert.equal(
    provenanceProblem(a, provenance(null, ['docker://registry.example/team/ssl:v2', 'oci:/etc:python3'])),
    'its provenance names the applied inputs [docker://registry.example/team/ssl:v2, oci:/etc:python3], the recipe\'s are [docker://registry.example/team/ssl:v2, docker://registry.example/python3:3]',
  );
});
