import { createHash } from 'node:crypto';
import type { StackerfileSpec } from './resources.ts';

/** `sha256:<hex>` of `text`. */
function sha256(text: string): string {
  return `sha256:${createHash('sha256').update(text).digest('hex')}`;
}

/**
 * What an ImageBuild pins of its Stackerfile: the digest of the recipe text it builds, and a
 * digest of everything that decides what is built: that recipe, the substitutions, the output
 * (registry, tags, insecure, push Secret) and the builder's image and storage. The rest of the spec
 * (history, schedule, update policies, suspend, the build pod's resources) changes nothing built,
 * so an edit there starts no build and supersedes none.
 */
export function buildDigests(spec: StackerfileSpec, recipe: string): { recipeDigest: string; buildDigest: string } {
  const recipeDigest = sha256(recipe);
  const { output, builder } = spec;
  const built = {
    recipe: recipeDigest,
    // Sorted: the API server may return the map's keys in another order than they were written.
    substitutions: Object.entries(spec.substitutions ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)),
    output: [output.registry, output.tags ?? ['latest'], output.insecure ?? false, output.pushSecretRef?.name ?? null],
    builder: [builder?.image ?? null, builder?.storage ?? 'overlay'],
  };
  return { recipeDigest, buildDigest: sha256(JSON.stringify(built)) };
}
