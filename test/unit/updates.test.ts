import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import type { ImageBuild, Stackerfile } from '../../src/operator/kube.ts';
import { buildsSince, buildsToPrune, imagesAfter, imagesSince } from '../../src/operator/stackerfile-controller.ts';
import { defaultBuildRetry, manualRebuild, planUpdate, retryAfterFailure, updateBuildName } from '../../src/operator/updates.ts';

const digest = (n: number) => `sha256:${String(n).repeat(64)}`;
const registry = '127.0.0.1:5000/team';
const python3 = `docker://${registry}/python3:latest`;
const ssl = `docker://${registry}/ssl:latest`;
const base = 'docker://127.0.0.1:5000/base:latest';

function stackerfile(extra: Partial<Stackerfile['spec']> = {}, annotations: Record<string, string> = {}): Stackerfile {
  return {
    metadata: { name: 'app', namespace: 'ns', generation: 1, uid: 'u1', annotations },
    spec: { recipe: '', output: { registry, tags: ['latest'], insecure: false }, ...extra } as Stackerfile['spec'],
    status: {
      images: [
        {
          name: 'A',
          ref: `${registry}/a:latest`,
          digest: digest(1),
          inputs: [
            { ref: base, role: 'from', digest: digest(2) },
            { ref: ssl, role: 'apply', digest: digest(3) },
            { ref: python3, role: 'apply', digest: digest(4) },
          ],
        },
      ],
    },
  };
}

const build = (name: string, spec: Partial<ImageBuild['spec']>, status: ImageBuild['status'] = {}): ImageBuild => ({
  metadata: { name },
  spec: { stackerfileRef: { name: 'app' }, strategy: 'Build', reason: 'Initial', recipeGeneration: 1, ...spec },
  status,
});

describe('planUpdate', () => {
  const latest = build('app-1-abcdef', {}, { phase: 'Succeeded' });

  test('nothing while every input is at its recorded digest, or not checked yet', () => {
    assert.equal(planUpdate(stackerfile(), latest, new Map([[python3, digest(4)]])).action, 'nothing');
    assert.equal(planUpdate(stackerfile(), latest, new Map()).action, 'nothing');
  });

  test('a new python3 is one swap of A, pinned to the new digest', () => {
    const plan = planUpdate(stackerfile(), latest, new Map([[python3, digest(5)], [ssl, digest(3)]]));
    assert.equal(plan.action, 'build');
    if (plan.action !== 'build') return;
    assert.equal(plan.spec.strategy, 'Swap');
    assert.equal(plan.spec.reason, 'ApplyUpdate');
    assert.deepEqual(plan.spec.images, ['A']);
    assert.deepEqual(plan.spec.inputs, [{ ref: python3, role: 'apply', digest: digest(5) }]);
    assert.match(plan.spec.cause ?? '', /^A: .*python3:latest sha256:444444444444 -> sha256:555555555555$/);
    assert.match(plan.name, /^app-swap-[0-9a-f]{8}$/);
    const again = planUpdate(stackerfile(), latest, new Map([[python3, digest(5)]]));
    assert.equal(again.action === 'build' && again.name, plan.name, 'the same name after a restart');
  });

  test('a new base is a rebuild (BaseUpdate), or nothing under onBaseUpdate: Ignore', () => {
    const plan = planUpdate(stackerfile(), latest, new Map([[base, digest(6)], [python3, digest(5)]]));
    assert.equal(plan.action === 'build' && plan.spec.strategy, 'Build');
    assert.equal(plan.action === 'build' && plan.spec.reason, 'BaseUpdate');
    const ignored = planUpdate(stackerfile({ updates: { schedule: '* * * * *', onApplyUpdate: 'Swap', onBaseUpdate: 'Ignore' } }), latest, new Map([[base, digest(6)]]));
    assert.equal(ignored.action, 'nothing');
  });

  test('onApplyUpdate: Rebuild rebuilds instead of swapping', () => {
    const plan = planUpdate(stackerfile({ updates: { schedule: '* * * * *', onApplyUpdate: 'Rebuild', onBaseUpdate: 'Rebuild' } }), latest, new Map([[python3, digest(5)]]));
    assert.equal(plan.action === 'build' && `${plan.spec.strategy}/${plan.spec.reason}`, 'Build/ApplyUpdate');
  });

  test('a swap the engine refused becomes a rebuild that names the refusal', () => {
    const swap = build('app-swap-1', { strategy: 'Swap', reason: 'ApplyUpdate' }, {
      phase: 'Succeeded',
      checks: [{ image: 'A', dependency: python3, from: digest(4), to: digest(5), result: 'Refused', reason: 'Overlap', message: 'changes /usr/lib/python3/x.py, which A also changed' }],
    });
    const plan = planUpdate(stackerfile(), swap, new Map([[python3, digest(5)]]));
    assert.equal(plan.action === 'build' && `${plan.spec.strategy}/${plan.spec.reason}`, 'Build/ApplyUpdate');
    assert.match(plan.action === 'build' ? (plan.spec.cause ?? '') : '', /refused \(Overlap\): changes \/usr\/lib\/python3\/x\.py/);
  });

  test('the restack.dev/rebuild annotation rebuilds once per value', () => {
    const sf = stackerfile({}, { 'restack.dev/rebuild': '2026-11-23' });
    const plan = planUpdate(sf, latest, new Map());
    assert.equal(plan.action === 'build' && `${plan.spec.strategy}/${plan.spec.reason}`, 'Build/Manual');
    sf.status = { ...sf.status, lastRebuildRequest: '2026-11-23' };
    assert.equal(planUpdate(sf, latest, new Map()).action, 'nothing');
  });

  test('every planned ImageBuild names the one it follows in spec.previous', () => {
    const swap = planUpdate(stackerfile(), latest, new Map([[python3, digest(5)]]));
    assert.equal(swap.action === 'build' && swap.spec.previous, 'app-1-abcdef');
    const rebuild = planUpdate(stackerfile(), latest, new Map([[base, digest(6)]]));
    assert.equal(rebuild.action === 'build' && rebuild.spec.previous, 'app-1-abcdef');
    assert.equal(manualRebuild(stackerfile({}, { 'restack.dev/rebuild': 'now' }), latest)?.spec.previous, 'app-1-abcdef');
    const failed = build('app-swap-1', { strategy: 'Swap', reason: 'ApplyUpdate' }, { phase: 'Failed', retryable: true, completionTime: '2026-11-23T10:00:00Z' });
    const retry = retryAfterFailure(stackerfile(), failed, defaultBuildRetry, Date.parse('2026-11-23T11:00:00Z'));
    assert.equal(retry?.action === 'build' && retry.spec.previous, 'app-swap-1');
    assert.equal(manualRebuild(stackerfile({}, { 'restack.dev/rebuild': 'now' }), undefined)?.spec.previous, undefined, 'the first build follows none');
  });

  test('names chain the previous build, so an input that returns to an earlier digest is acted on again', () => {
    assert.notEqual(updateBuildName('app', 'app-swap-1', 'swap', 'x'), updateBuildName('app', 'app-swap-2', 'swap', 'x'));
    assert.equal(updateBuildName('app', 'app-swap-1', 'swap', 'x'), updateBuildName('app', 'app-swap-1', 'swap', 'x'));
  });
});

describe('status folding and history', () => {
  test('a swap replaces the digest and inputs of the images it swapped, and keeps the others', () => {
    const sf = stackerfile();
    const swapped = build('app-swap-1', { strategy: 'Swap', reason: 'ApplyUpdate' }, {
      phase: 'Succeeded',
      completionTime: '2026-11-23T10:00:00Z',
      outputs: [{ name: 'A', ref: `${registry}/a:latest`, digest: digest(7), before: digest(1), inputs: [{ ref: python3, role: 'apply', digest: digest(5) }] }],
    });
    const images = imagesAfter([...(sf.status?.images ?? []), { name: 'B', ref: `${registry}/b:latest`, digest: digest(8) }], swapped);
    assert.equal(images.find((i) => i.name === 'A')?.digest, digest(7));
    assert.deepEqual(images.find((i) => i.name === 'A')?.inputs, [{ ref: python3, role: 'apply', digest: digest(5) }]);
    assert.equal(images.find((i) => i.name === 'A')?.lastChange?.strategy, 'Swap');
    assert.equal(images.find((i) => i.name === 'B')?.digest, digest(8));
  });

  test('history keeps the builds in use and the newest finished ones within the limits', () => {
    const sf = stackerfile({ history: { succeeded: 2, failed: 1 } });
    const finished = (name: string, phase: 'Succeeded' | 'Failed', minute: number) => build(name, {}, { phase, completionTime: `2026-11-23T10:${String(minute).padStart(2, '0')}:00Z` });
    const builds = [finished('s1', 'Succeeded', 1), finished('s2', 'Succeeded', 2), finished('s3', 'Succeeded', 3), finished('s4', 'Succeeded', 4), finished('f1', 'Failed', 5), finished('f2', 'Failed', 6)];
    const pruned = buildsToPrune(sf, builds, new Set(['s1'])).map((b) => b.metadata?.name);
    assert.deepEqual(pruned.sort(), ['f1', 's2', 's3']);
  });

  const swapOf = (name: string, previous: string, to: number, phase: 'Pending' | 'Succeeded' | 'Failed' = 'Succeeded', created = '2026-11-23T10:00:00Z') => ({
    ...build(name, { strategy: 'Swap', reason: 'ApplyUpdate', previous }, {
      phase,
      completionTime: created,
      ...(phase === 'Succeeded' ? { outputs: [{ name: 'A', ref: `${registry}/a:latest`, digest: digest(to), inputs: [{ ref: python3, role: 'apply' as const, digest: digest(to) }] }] } : {}),
    }),
    metadata: { name, creationTimestamp: new Date(created) },
  });

  test('buildsSince follows spec.previous from the recorded build, oldest first, whatever order the cache lists them in', () => {
    const initial = build('app-1-abcdef', {}, { phase: 'Succeeded' });
    const first = swapOf('app-swap-1', 'app-1-abcdef', 5);
    const second = swapOf('app-swap-2', 'app-swap-1', 6, 'Pending');
    const unrelated = swapOf('other-swap-1', 'other-1-abcdef', 7);
    const builds = [second, unrelated, initial, first];
    assert.deepEqual(buildsSince('app-1-abcdef', builds).map((b) => b.metadata?.name), ['app-swap-1', 'app-swap-2']);
    assert.deepEqual(buildsSince('app-swap-1', builds).map((b) => b.metadata?.name), ['app-swap-2']);
    assert.deepEqual(buildsSince('app-swap-2', builds), [], 'nothing after the newest');
    assert.deepEqual(buildsSince(undefined, builds), [], 'no chain before the first build is recorded');
  });

  test('buildsSince takes the newer of two builds that follow the same one, and ends at a loop', () => {
    const older = swapOf('app-swap-a', 'app-1', 5, 'Succeeded', '2026-11-23T10:00:00Z');
    const newer = swapOf('app-swap-b', 'app-1', 6, 'Succeeded', '2026-11-23T10:00:01Z');
    assert.deepEqual(buildsSince('app-1', [newer, older]).map((b) => b.metadata?.name), ['app-swap-b']);
    assert.deepEqual(buildsSince('app-1', [older, newer]).map((b) => b.metadata?.name), ['app-swap-b']);
    const loop = [swapOf('x', 'y', 5), swapOf('y', 'x', 6)];
    assert.deepEqual(buildsSince('x', loop).map((b) => b.metadata?.name), ['y']);
  });

  test('imagesSince folds the succeeded builds in turn: a status write lost after a swap is made up, and folding again changes nothing', () => {
    const sf = stackerfile();
    const chain = [swapOf('app-swap-1', 'app-1', 5), swapOf('app-swap-2', 'app-swap-1', 9, 'Failed'), swapOf('app-swap-3', 'app-swap-2', 6)];
    const images = imagesSince(sf.status?.images, [undefined, ...chain]);
    assert.equal(images[0]?.digest, digest(6));
    assert.equal(images[0]?.lastChange?.imageBuild, 'app-swap-3');
    assert.deepEqual(imagesSince(images, chain.slice(2)), images);
    assert.deepEqual(imagesSince(sf.status?.images, []), sf.status?.images);
  });
});
