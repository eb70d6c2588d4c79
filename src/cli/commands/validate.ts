import { planRecipes } from '../../stackerfile/plan.ts';
import type { RegisterCommand } from './index.ts';
import { addRecipeOptions, loadAndReport, type RecipeOptions } from './recipe-options.ts';

export const registerValidate: RegisterCommand = (program, context) => {
  addRecipeOptions(program.command('validate').description('check a recipe and print every error with its FILE:LINE:COL'))
    .action(async (options: RecipeOptions) => {
      const { output } = context();
      const loaded = await loadAndReport(options, output);
      if (loaded === undefined) return;
      const plan = planRecipes(loaded.recipes);
      const inputs = plan.inputs.length;
      output.out(`${options.file}: valid: ${plan.order.length} layer${plan.order.length === 1 ? '' : 's'} (${plan.order.join(', ')}), ${inputs} external input${inputs === 1 ? '' : 's'}`);
    });
};
