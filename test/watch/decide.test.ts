import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { decide, defaultPolicy, rebuildAfterRefusal, type DecisionInput, type RecordedImage, type UpdatePolicy } from '../../src/watch/decide.ts';

const digest = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const base = 'docker://reg/centos:latest';
const ssl = 'docker://reg/ssl:latest';
const python3 = 'docker://reg/python3:latest';

const recordedA: RecordedImage = {
  base: { ref: base, digest: digest(1) },
  applied: [
    { ref: ssl, digest: digest(2) },
    { ref: python3, digest: digest(3) },
  ],
  recipe: 'A: {run: install}\n',
};

function inputFor(current: Record<string, string>, more: Partial<DecisionInput> = {}): DecisionInput {
  return { name: 'A', recorded: recordedA, recipe: recordedA.recipe as string, current: new Map(Object.entries(current)), policy: defaultPolicy, ...more };
}
const applyRebuild: UpdatePolicy = { onApplyUpdate: 'Rebuild', onBaseUpdate: 'Rebuild' };
const baseIgnore: UpdatePolicy = { onApplyUpdate: 'Swap', onBaseUpdate: 'Ignore' };

const unchanged = { [base]: digest(1), [ssl]: digest(2), [python3]: digest(3) };

describe('decide', () => {
  test('inputs at their recorded digests: nothing', () => {
    assert.equal(decide(inputFor(unchanged)).action, 'nothing');
  });

  test('a new python3: swap it, naming the old and new digest', () => {
    const decision = decide(inputFor({ ...unchanged, [python3]: digest(4) }));
    assert.equal(decision.action, 'swap');
    assert.deepEqual(decision.action === 'swap' && decision.dependencies, [{ ref: python3, from: digest(3), to: digest(4) }]);
    assert.match(decision.message, /python3:latest sha256:333333333333 -> sha256:444444444444/);
  });

  test('both applied inputs new: one swap of each, in recipe order', () => {
    const decision = decide(inputFor({ ...unchanged, [ssl]: digest(5), [python3]: digest(4) }));
    assert.deepEqual(decision.action === 'swap' && decision.dependencies.map((d) => d.ref), [ssl, python3]);
  });

  test('onApplyUpdate: Rebuild turns an applied change into a rebuild with reason ApplyUpdate', () => {
    const decision = decide(inputFor({ ...unchanged, [python3]: digest(4) }, { policy: applyRebuild }));
    assert.equal(decision.action === 'rebuild' && decision.reason, 'ApplyUpdate');
    assert.match(decision.message, /onApplyUpdate: Rebuild/);
  });

  test('a new base: rebuild with reason BaseUpdate, even when an applied input changed too', () => {
    const decision = decide(inputFor({ ...unchanged, [base]: digest(6), [python3]: digest(4) }));
    assert.equal(decision.action === 'rebuild' && decision.reason, 'BaseUpdate');
    assert.match(decision.message, /centos:latest sha256:111111111111 -> sha256:666666666666/);
  });

  test('onBaseUpdate: Ignore: a new base alone changes nothing, and says it was ignored', () => {
    const decision = decide(inputFor({ ...unchanged, [base]: digest(6) }, { policy: baseIgnore }));
    assert.equal(decision.action, 'nothing');
    assert.match(decision.message, /ignored \(onBaseUpdate: Ignore\)/);
  });

  test('onBaseUpdate: Ignore still swaps a new applied input', () => {
    const decision = decide(inputFor({ ...unchanged, [base]: digest(6), [python3]: digest(4) }, { policy: baseIgnore }));
    assert.equal(decision.action, 'swap');
  });

  test('a changed recipe: rebuild with reason RecipeChange, whatever the inputs', () => {
    const decision = decide(inputFor({ ...unchanged, [python3]: digest(4) }, { recipe: 'A: {run: install --v2}\n' }));
    assert.equal(decision.action === 'rebuild' && decision.reason, 'RecipeChange');
  });

  test('an image without a recipe record is judged by its inputs only', () => {
    assert.equal(decide(inputFor(unchanged, { recorded: { ...recordedA, recipe: undefined }, recipe: 'anything' })).action, 'nothing');
  });

  test('never published: build it, reason Initial, with the cause given', () => {
    const decision = decide(inputFor(unchanged, { recorded: undefined, missingBecause: 'has no restack provenance' }));
    assert.equal(decision.action === 'rebuild' && decision.reason, 'Initial');
    assert.equal(decision.message, 'A has no restack provenance');
    assert.equal(decide(inputFor(unchanged, { recorded: undefined })).message, 'A is not published yet');
  });

  test('an input the caller did not resolve is taken as unchanged', () => {
    assert.equal(decide(inputFor({ [base]: digest(1) })).action, 'nothing');
  });

  test('an image from a tar base (no base recorded) still sees applied changes', () => {
    const decision = decide(inputFor({ ...unchanged, [ssl]: digest(7) }, { recorded: { ...recordedA, base: null } }));
    assert.equal(decision.action, 'swap');
  });

  test('a refused swap becomes a rebuild that keeps the refusal (the overlapping paths)', () => {
    const decision = rebuildAfterRefusal(
      { ref: python3, from: digest(3), to: digest(4) },
      { reason: 'Overlap', message: 'python3 changes /etc/ld.so.cache, which A\'s layers above it also changed' },
    );
    assert.equal(decision.reason, 'ApplyUpdate');
    assert.match(decision.message, /refused \(Overlap\): python3 changes \/etc\/ld\.so\.cache/);
  });
});
