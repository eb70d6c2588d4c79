import { resolve } from 'node:path';
import { formatDiagnostic, sortDiagnostics } from '../stackerfile/diagnostics.ts';
import { confinementDiagnostics } from '../stackerfile/host-paths.ts';
import { loadRecipes, type LoadedRecipes } from '../stackerfile/load.ts';
import type { Kube, Stackerfile } from './kube.ts';

export type RecipeText = { ok: true; text: string; file: string } | { ok: false; message: string };

/** The recipe of a Stackerfile: spec.recipe, or the ConfigMap key spec.recipeFrom names. */
export async function readRecipe(kube: Kube, stackerfile: Stackerfile): Promise<RecipeText> {
  const namespace = stackerfile.metadata?.namespace ?? 'default';
  const name = stackerfile.metadata?.name ?? '';
  if (stackerfile.spec.recipe !== undefined) return { ok: true, text: stackerfile.spec.recipe, file: `${namespace}/${name}.stacker.yaml` };
  const ref = stackerfile.spec.recipeFrom?.configMapKeyRef;
  if (ref === undefined) return { ok: false, message: 'spec: give the recipe in spec.recipe or spec.recipeFrom.configMapKeyRef' };
  const found = await kube.configMapValue(namespace, ref.name, ref.key);
  if (found.value !== undefined) return { ok: true, text: found.value, file: ref.key };
  return {
    ok: false,
    message:
      found.found === 'none'
        ? `spec.recipeFrom.configMapKeyRef: ConfigMap ${namespace}/${ref.name} does not exist; create it or fix the name`
        : `spec.recipeFrom.configMapKeyRef: ConfigMap ${namespace}/${ref.name} has no key "${ref.key}"; add it or fix the key`,
  };
}

/**
 * Validates recipe text from memory; prerequisites (other files) cannot be read by the operator.
 * Paths on the build machine outside the recipe's directory are errors: a tenant's recipe reads
 * no file of the operator's or of the build pod's (a service account token, a mounted Secret).
 */
export async function validateRecipe(text: string, file: string, substitutions: Record<string, string> = {}): Promise<LoadedRecipes> {
  const path = resolve(file);
  const loaded = await loadRecipes(file, {
    substitute: Object.entries(substitutions).map(([key, value]) => `${key}=${value}`),
    readText: async (wanted) => {
      if (wanted === path) return text;
      throw new Error('a Stackerfile recipe cannot read other files; inline the prerequisite into the recipe');
    },
  });
  const escapes = loaded.recipes.flatMap(confinementDiagnostics);
  return escapes.length === 0 ? loaded : { ...loaded, diagnostics: [...loaded.diagnostics, ...escapes], ok: false };
}

/** Every error as FILE:LINE:COL: path: message, one a line, top to bottom. */
export function describeDiagnostics(loaded: LoadedRecipes): string {
  return sortDiagnostics(loaded.diagnostics.filter((d) => d.severity === 'error')).map(formatDiagnostic).join('\n');
}
