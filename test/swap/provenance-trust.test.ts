/**
 * Provenance is written by whoever can push the image, so it is evidence to check, never a source
 * of references: an image whose provenance points at another repository (one the runner's
 * credentials can read, the pusher's cannot) must not make restack read that repository, mount
 * its layers or move the tag.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { readStoredImage } from '../../src/engine/images.ts';
import { LayerChangesCache } from '../../src/engine/layer-changes.ts';
import { moveTags, writeImage } from '../../src/engine/publish.ts';
import { swapDependency } from '../../src/engine/swap.ts';
import { recordedAgainstRecipe, updateRecipes, type ImageFacts, type UpdateRequest } from '../../src/engine/update.ts';
import { loadRecipes } from '../../src/stackerfile/load.ts';
import { planRecipes } from '../../src/stackerfile/plan.ts';
import { readProvenance, serializeImage } from '../../src/swap/image.ts';
import { encodeProvenance, type Provenance } from '../../src/swap/provenance.ts';
import { decide, defaultPolicy, rebuildAfterRefusal } from '../../src/watch/decide.ts';
import { makeLayer, type BuiltLayer } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered, pushSeeds, type SeedImages } from './seeds.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

const digest = (n: number) => `sha256:${String(n).repeat(64)}`;
const provenance = (applied: [string, string][]): Provenance => ({
  version: 1,
  base: { ref: 'docker://reg/base:latest', digest: digest(1), layers: { start: 0, count: 1 } },
  applied: applied.map(([ref, at], index) => ({ ref, digest: at, layers: { start: 1 + index, count: 1 }, base: { count: 1, chain: 'x' } })),
  own: { layers: { start: 1 + applied.length, count: 1 } },
});

test('what an image records is read on the recipe terms: a reference the recipe does not name is inconsistent, never followed', () => {
  const expected = { base: 'docker://reg/base:latest', applied: ['docker://reg/ssl:latest', 'docker://reg/python3:latest'] };
  const honest = recordedAgainstRecipe(provenance([['docker://reg/ssl:latest', digest(2)], ['reg/python3', digest(3)]]), expected, undefined);
  assert.deepEqual(honest, {
    base: { ref: expected.base, digest: digest(1) },
    applied: [
      { ref: expected.applied[0], digest: digest(2) },
      { ref: expected.applied[1], digest: digest(3) },
    ],
    recipe: undefined,
  });
  for (const hostile of ['docker://reg/secret:latest', 'oci:/var/run/secrets', 'docker://reg/python3:other-tag', 'docker://elsewhere/python3:latest']) {
    const recorded = recordedAgainstRecipe(provenance([['docker://reg/ssl:latest', digest(2)], [hostile, digest(3)]]), expected, undefined);
    assert.ok('inconsistent' in recorded, hostile);
    assert.match(recorded.inconsistent, new RegExp(`records applied .*${hostile.replace(/[/:.]/g, '.')}, the recipe applies`));
  }
  const facts: ImageFacts = { name: 'A', recorded: { base: null, applied: [], recipe: undefined }, inconsistent: 'records applied x, the recipe applies y', recipe: '', current: new Map() };
  const decision = decide({ ...facts, policy: defaultPolicy });
  assert.equal(decision.action === 'rebuild' && decision.reason, 'RecipeChange');
  assert.match(decision.message, /provenance of A's image records applied x, the recipe applies y: it is rebuilt/);
});

describe('an image whose provenance points at another repository, on docker-registry', { skip }, () => {
  const running = registry as RunningRegistry;
  const prefix = () => `docker://${running.host}/trust`;
  let seeds: SeedImages;
  let secret: BuiltLayer;
  let secretDigest: string;
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'restack-trust-'));
    seeds = await pushSeeds(prefix());
    secret = await makeLayer({ 'etc/shadow': 'root:secret-hash\n' });
    secretDigest = await pushLayered(prefix(), 'secret', [seeds.base, secret]);
  });
  after(async () => {
    await running.stop();
    await rm(dir, { recursive: true, force: true });
  });

  /** Pushes A again with python3's provenance entry edited, as anyone who can push A could. */
  async function pushHostileA(edit: (entry: Provenance['applied'][number]) => Provenance['applied'][number]): Promise<string> {
    const target = open(`${prefix()}/a:latest`);
    const [a] = (await readStoredImage(open(`${prefix()}/a@${seeds.a}`))).platforms;
    assert.ok(a);
    const recorded = readProvenance(a.image, 'A') as Provenance;
    const edited = { ...recorded, applied: recorded.applied.map((entry, index) => (index === 1 ? edit(entry) : entry)) };
    const annotations = { ...a.image.manifest.annotations, 'restack.dev/provenance': encodeProvenance(edited) };
    const serialized = serializeImage({ manifest: { ...a.image.manifest, annotations }, config: a.image.config });
    await writeImage(target, serialized);
    await moveTags(target, serialized.manifestDescriptor);
    return serialized.manifestDescriptor.digest;
  }

  async function assertUntouched(hostile: string): Promise<void> {
    const target = open(`${prefix()}/a:latest`);
    assert.equal((await target.store.getManifest(target.repository, 'latest')).descriptor.digest, hostile, 'the tag did not move');
    assert.equal(await target.store.hasBlob(target.repository, secret.descriptor), false, "nothing was mounted from the secret repository");
  }

  test('restack update follows the recipe: the secret repository is never opened, and A is rebuilt, not swapped', async () => {
    const hostile = await pushHostileA((entry) => ({ ...entry, ref: `${prefix()}/secret:latest` }));
    await writeFile(join(dir, 'stacker.yaml'), `A: {from: {type: docker, url: "${prefix()}/base:latest"}, apply: ["${prefix()}/ssl:latest", "${prefix()}/python3:latest"], run: [echo]}\n`);
    const loaded = await loadRecipes(join(dir, 'stacker.yaml'));
    assert.ok(loaded.ok, JSON.stringify(loaded.diagnostics));
    const opened: string[] = [];
    const seen: ImageFacts[] = [];
    await updateRecipes({
      plan: planRecipes(loaded.recipes),
      recipes: loaded.recipes,
      prefix: prefix(),
      tags: ['latest'],
      // records what the decision was given; decides nothing, so no build runs
      decider: {
        decide: (facts) => {
          seen.push(facts);
          return { action: 'nothing', message: 'recorded' };
        },
        afterRefusal: rebuildAfterRefusal,
      },
      build: { ociDir: join(dir, 'oci') } as UpdateRequest['build'],
      open: (ref) => {
        opened.push(ref);
        return open(ref);
      },
      layerChanges: new LayerChangesCache(),
      onEvent: () => {},
    });
    assert.deepEqual(opened.filter((ref) => ref.includes('secret')), [], 'the secret repository was not read');
    const [facts] = seen;
    assert.ok(facts);
    const decision = decide({ ...facts, policy: defaultPolicy });
    assert.equal(decision.action === 'rebuild' && decision.reason, 'RecipeChange', decision.message);
    assert.match(decision.message, /records applied .*secret:latest, the recipe applies .*python3:latest/);
    await assertUntouched(hostile);
  });

  test("a swap into an image whose provenance names the secret repository, or the secret image's digest, is refused", async () => {
    await pushLayered(prefix(), 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'python 3.12\n' })]);
    const edits = {
      'another repository': (entry: Provenance['applied'][number]) => ({ ...entry, ref: `${prefix()}/secret:latest` }),
      "the secret image's digest": (entry: Provenance['applied'][number]) => ({ ...entry, digest: secretDigest }),
      'a stale digest python3 never had': (entry: Provenance['applied'][number]) => ({ ...entry, digest: digest(9) }),
    };
    for (const [what, edit] of Object.entries(edits)) {
      const hostile = await pushHostileA(edit);
      const outcome = await swapDependency({ target: open(`${prefix()}/a:latest`), dependency: open(`${prefix()}/python3:latest`), layerChanges: new LayerChangesCache() });
      assert.equal(outcome.status, 'refused', what);
      assert.equal(outcome.refusal?.reason, 'Inconsistent', what);
      assert.match(outcome.refusal?.message ?? '', /rebuild/, what);
      await assertUntouched(hostile);
    }
  });
});
