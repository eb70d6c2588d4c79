import type { Decision, DependencyChange, ImageFacts, RecordedInput, SwapRefusal } from '../engine/update.ts';

export type { Decision, DependencyChange, ImageFacts, RebuildReason, RecordedImage, RecordedInput, SwapRefusal } from '../engine/update.ts';

/**
 * The decision for one published image, as kpack's "is a build required" chain: pure, from what
 * the image records about its inputs and what those inputs are now, with a reason a person can
 * read. The operator and `restack update` both act on it (the engine defines the vocabulary).
 */

export type ApplyPolicy = 'Swap' | 'Rebuild';
export type BasePolicy = 'Rebuild' | 'Ignore';

export interface UpdatePolicy {
  onApplyUpdate: ApplyPolicy;
  onBaseUpdate: BasePolicy;
}

export const defaultPolicy: UpdatePolicy = { onApplyUpdate: 'Swap', onBaseUpdate: 'Rebuild' };

export interface DecisionInput extends ImageFacts {
  policy: UpdatePolicy;
}

const short = (digest: string) => digest.slice(0, 19);

function describeChange(change: DependencyChange): string {
  return `${change.ref} ${short(change.from)} -> ${short(change.to)}`;
}

function changed(input: RecordedInput, current: ReadonlyMap<string, string>): DependencyChange | undefined {
  const now = current.get(input.ref);
  return now === undefined || now === input.digest ? undefined : { ref: input.ref, from: input.digest, to: now };
}

export function decide(input: DecisionInput): Decision {
  const { name, recorded, current, policy } = input;
  if (recorded === undefined) {
    return { action: 'rebuild', reason: 'Initial', message: `${name} ${input.missingBecause ?? 'is not published yet'}` };
  }
  if (recorded.recipe !== undefined && recorded.recipe !== input.recipe) {
    return { action: 'rebuild', reason: 'RecipeChange', message: `the recipe of ${name} changed since its image was built` };
  }
  if (input.inconsistent !== undefined) {
    return { action: 'rebuild', reason: 'RecipeChange', message: `the provenance of ${name}'s image ${input.inconsistent}: it is rebuilt from the recipe, never swapped on its own say-so` };
  }
  const base = recorded.base === null ? undefined : changed(recorded.base, current);
  const applied = recorded.applied.flatMap((entry) => changed(entry, current) ?? []);
  const ignoredBase = base !== undefined && policy.onBaseUpdate === 'Ignore' ? `; base ${describeChange(base)} ignored (onBaseUpdate: Ignore)` : '';
  if (base !== undefined && policy.onBaseUpdate === 'Rebuild') {
    return { action: 'rebuild', reason: 'BaseUpdate', message: `base ${describeChange(base)}` };
  }
  if (applied.length === 0) return { action: 'nothing', message: `inputs unchanged${ignoredBase}` };
  const described = applied.map(describeChange).join(', ');
  if (policy.onApplyUpdate === 'Rebuild') {
    return { action: 'rebuild', reason: 'ApplyUpdate', message: `applied ${described} (onApplyUpdate: Rebuild)${ignoredBase}` };
  }
  return { action: 'swap', dependencies: applied, message: `applied ${described}${ignoredBase}` };
}

/** A refused swap falls back to a rebuild, keeping the engine's reason (the overlapping paths, the changed base). */
export function rebuildAfterRefusal(dependency: DependencyChange, refusal: SwapRefusal): Extract<Decision, { action: 'rebuild' }> {
  return {
    action: 'rebuild',
    reason: 'ApplyUpdate',
    message: `swapping ${describeChange(dependency)} was refused (${refusal.reason}): ${refusal.message}`,
  };
}
