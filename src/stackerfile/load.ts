import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, relative, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { type Diagnostic } from './diagnostics.ts';
import { checkReferences, parseRecipe, type Recipe } from './parse.ts';
import { builtinSubstitutionNames } from './substitute.ts';

export interface LoadOptions {
  /** `--substitute K=V` values, in order; they win over the substitutions file. */
  substitute?: string[];
  /** `--substitute-file F`: a YAML map of names to values. */
  substituteFile?: string;
  /** Values for `${{STACKER_*}}`; defaults suit a build in the recipe's directory. */
  builtins?: Partial<Record<(typeof builtinSubstitutionNames)[number], string>>;
  /** Reads a file; replaceable so the operator can load recipes that live in the API server. */
  readText?: (path: string) => Promise<string>;
}

export interface LoadedRecipes {
  /** Prerequisite recipes first (in the order they must be built), the requested recipe last. */
  recipes: Recipe[];
  diagnostics: Diagnostic[];
  ok: boolean;
}

const readUtf8 = (path: string) => readFile(path, 'utf8');

/**
 * Reads a recipe and, recursively, the prerequisites named in its `config:`, substitutes, parses
 * and validates them all, and checks every layer reference against the layers they define.
 */
export async function loadRecipes(file: string, options: LoadOptions = {}): Promise<LoadedRecipes> {
  const readText = options.readText ?? readUtf8;
  const diagnostics: Diagnostic[] = [];
  const substitutions = await substitutionValues(file, options, diagnostics, readText);
  const recipes: Recipe[] = [];
  /** Per loaded file, the layer names it makes available: its own and, as in stacker, its prerequisites'. */
  const visibleNames = new Map<string, ReadonlySet<string>>();

  const load = async (path: string, shownAs: string, chain: string[]): Promise<ReadonlySet<string>> => {
    const known = visibleNames.get(path);
    if (known !== undefined) return known;
    const text = await readText(path);
    const { recipe, diagnostics: found } = parseRecipe(text, { file: shownAs, substitutions });
    diagnostics.push(...found);
    if (recipe === undefined) {
      visibleNames.set(path, new Set());
      return new Set();
    }
    const external = new Set<string>();
    const prerequisites = recipe.config.prerequisites ?? [];
    for (const [index, prerequisite] of prerequisites.entries()) {
      const target = isAbsolute(prerequisite) ? prerequisite : resolve(dirname(path), prerequisite);
      const field = ['config', 'prerequisites', index];
      const problem = (message: string) =>
        diagnostics.push({ severity: 'error', file: shownAs, position: recipe.locate(field), path: field.join('.'), message });
      if (chain.includes(target)) {
        problem(`prerequisite "${prerequisite}" leads back to this recipe (${[...chain, target].map((p) => relative(process.cwd(), p)).join(' -> ')})`);
        continue;
      }
      try {
        for (const name of await load(target, relative(process.cwd(), target) || target, [...chain, target])) external.add(name);
      } catch (error) {
        problem(`cannot read prerequisite "${prerequisite}" (${target}): ${describeReadError(error)}; fix the path, which is relative to this recipe's directory`);
      }
    }
    diagnostics.push(...checkReferences(recipe, external));
    recipes.push(recipe);
    const visible = new Set([...external, ...recipe.definedNames]);
    visibleNames.set(path, visible);
    return visible;
  };

  const absolute = resolve(file);
  try {
    await load(absolute, file, [absolute]);
  } catch (error) {
    diagnostics.push({
      severity: 'error',
      file,
      position: { line: 1, col: 1 },
      path: '(top)',
      message: `cannot read the recipe: ${describeReadError(error)}; give its path with -f FILE`,
    });
  }
  return { recipes, diagnostics, ok: !diagnostics.some((d) => d.severity === 'error') };
}

function describeReadError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES') return 'permission denied';
  if (code === 'EISDIR') return 'it is a directory';
  return error instanceof Error ? error.message : String(error);
}

async function substitutionValues(
  file: string,
  options: LoadOptions,
  diagnostics: Diagnostic[],
  readText: (path: string) => Promise<string>,
): Promise<Map<string, string>> {
  const directory = dirname(resolve(file));
  const values = new Map<string, string>([
    ['STACKER_ROOTFS_DIR', options.builtins?.STACKER_ROOTFS_DIR ?? resolve(directory, 'roots')],
    ['STACKER_STACKER_DIR', options.builtins?.STACKER_STACKER_DIR ?? resolve(directory, '.stacker')],
    ['STACKER_OCI_DIR', options.builtins?.STACKER_OCI_DIR ?? resolve(directory, 'oci')],
    ['STACKER_WORK_DIR', options.builtins?.STACKER_WORK_DIR ?? directory],
  ]);
  const fail = (source: string, message: string) =>
    diagnostics.push({ severity: 'error', file: source, position: { line: 1, col: 1 }, path: 'substitution', message });
  if (options.substituteFile !== undefined) {
    try {
      const map: unknown = parseYaml(await readText(options.substituteFile));
      if (map === null || typeof map !== 'object' || Array.isArray(map)) {
        fail(options.substituteFile, 'the substitutions file must be a YAML map of NAME: value');
      } else {
        for (const [key, value] of Object.entries(map)) {
          if (value !== null && typeof value === 'object') fail(options.substituteFile, `${key}: the value must be a string, not a map or list`);
          else values.set(key, value === null ? '' : String(value));
        }
      }
    } catch (error) {
      fail(options.substituteFile, `cannot read the substitutions file: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`);
    }
  }
  for (const assignment of options.substitute ?? []) {
    const equals = assignment.indexOf('=');
    if (equals <= 0) fail('--substitute', `"${assignment}" is not NAME=VALUE`);
    else values.set(assignment.slice(0, equals), assignment.slice(equals + 1));
  }
  return values;
}
