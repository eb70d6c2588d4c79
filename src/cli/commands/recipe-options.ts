import type { Command } from 'commander';
import { formatDiagnostic, sortDiagnostics } from '../../stackerfile/diagnostics.ts';
import { loadRecipes, type LoadedRecipes, type LoadOptions } from '../../stackerfile/load.ts';
import type { Output } from '../output.ts';

export interface RecipeOptions {
  file: string;
  substitute: string[];
  substituteFile?: string;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** The options every command that reads a recipe takes, as stacker spells them. */
export function addRecipeOptions(command: Command): Command {
  return command
    .option('-f, --file <file>', 'the stacker.yaml recipe', 'stacker.yaml')
    .option('--substitute <NAME=VALUE>', 'a value for ${{NAME}} (repeatable; wins over --substitute-file)', collect, [])
    .option('--substitute-file <file>', 'a YAML map of substitution values');
}

/** Loads the recipe and prints its diagnostics (warnings too); `undefined` means it had errors. */
export async function loadAndReport(options: RecipeOptions, output: Output, builtins?: LoadOptions['builtins']): Promise<LoadedRecipes | undefined> {
  const loaded = await loadRecipes(options.file, {
    substitute: options.substitute,
    ...(builtins === undefined ? {} : { builtins }),
    ...(options.substituteFile === undefined ? {} : { substituteFile: options.substituteFile }),
  });
  for (const diagnostic of sortDiagnostics(loaded.diagnostics)) output.err(formatDiagnostic(diagnostic));
  if (!loaded.ok) {
    const count = loaded.diagnostics.filter((d) => d.severity === 'error').length;
    output.err(`${options.file}: ${count} error${count === 1 ? '' : 's'}`);
    process.exitCode = 1;
    return undefined;
  }
  return loaded;
}
