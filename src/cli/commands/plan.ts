import { planRecipes, type Plan } from '../../stackerfile/plan.ts';
import { formatTable, printJson, type Output } from '../output.ts';
import type { RegisterCommand } from './index.ts';
import { addRecipeOptions, loadAndReport, type RecipeOptions } from './recipe-options.ts';

export const registerPlan: RegisterCommand = (program, context) => {
  addRecipeOptions(program.command('plan').description('show the layers in build order, what each depends on, and the external inputs'))
    .option('--json', 'print one JSON object')
    .action(async (options: RecipeOptions & { json?: boolean }) => {
      const { output } = context();
      const loaded = await loadAndReport(options, output);
      if (loaded === undefined) return;
      const plan = planRecipes(loaded.recipes);
      if (options.json === true) printJson(output, planJson(plan));
      else printPlan(plan, output);
    });
};

export function planJson(plan: Plan) {
  return {
    order: plan.order,
    layers: plan.layers.map((layer) => ({
      name: layer.name,
      from: layer.from,
      apply: layer.apply,
      dependsOn: layer.dependsOn,
      buildOnly: layer.buildOnly,
    })),
    inputs: plan.inputs,
  };
}

function printPlan(plan: Plan, output: Output): void {
  output.out('Layers, in build order:');
  output.out(
    formatTable(
      ['#', 'LAYER', 'FROM', 'APPLY', 'DEPENDS ON'],
      plan.layers.map((layer, index) => [
        String(index + 1),
        layer.buildOnly ? `${layer.name} (build only)` : layer.name,
        layer.from.type === 'built' ? `built:${layer.from.tag ?? ''}` : layer.from.type === 'scratch' ? 'scratch' : (layer.from.url ?? ''),
        layer.apply.join(', ') || '-',
        layer.dependsOn.join(', ') || '-',
      ]),
    ),
  );
  output.out('');
  output.out('External inputs:');
  output.out(
    plan.inputs.length === 0
      ? '  (none)'
      : formatTable(['REF', 'ROLE', 'USED BY'], plan.inputs.map((input) => [input.ref, input.role, input.usedBy.join(', ')])),
  );
}
