import { isLayerName, layerEdges, type Recipe } from './parse.ts';
import type { From, Layer } from './schema.ts';

export type InputRole = 'from' | 'apply';

export interface PlannedLayer {
  name: string;
  /** The recipe file that defines the layer (a prerequisite's, or the main one). */
  recipe: string;
  from: From;
  apply: string[];
  /** Layers of this build that must be built first. */
  dependsOn: string[];
  buildOnly: boolean;
  definition: Layer;
}

/** An image from outside the build that a layer depends on. */
export interface PlannedInput {
  ref: string;
  role: InputRole;
  type: 'docker' | 'oci' | 'tar';
  usedBy: string[];
}

export interface Plan {
  order: string[];
  layers: PlannedLayer[];
  inputs: PlannedInput[];
}

/** The reference an external base is known by: `docker://...`, `oci:DIR:TAG` or the tarball's path or URL. */
export function baseReference(from: From): string | undefined {
  if (from.url === undefined) return undefined;
  return from.type === 'oci' && !from.url.startsWith('oci:') ? `oci:${from.url}` : from.url;
}

/**
 * The layer DAG of validated recipes (prerequisites first) in a deterministic build order: a layer
 * comes as early as its dependencies allow, ties broken by the order of the files.
 */
export function planRecipes(recipes: readonly Recipe[]): Plan {
  const fileOrder: PlannedLayer[] = [];
  for (const recipe of recipes) {
    for (const [name, layer] of recipe.layers) {
      fileOrder.push({
        name,
        recipe: recipe.file,
        from: layer.from,
        apply: layer.apply ?? [],
        dependsOn: [...new Set(layerEdges(name, layer).map((edge) => edge.to))],
        buildOnly: layer.build_only ?? false,
        definition: layer,
      });
    }
  }
  const layers = buildOrder(fileOrder);
  return { order: layers.map((layer) => layer.name), layers, inputs: externalInputs(layers) };
}

function buildOrder(fileOrder: PlannedLayer[]): PlannedLayer[] {
  const done = new Set<string>();
  const ordered: PlannedLayer[] = [];
  const pending = [...fileOrder];
  while (pending.length > 0) {
    const next = pending.findIndex((layer) => layer.dependsOn.every((dependency) => done.has(dependency)));
    // Validation rejects cycles and unknown names, so there is always a next layer; guard anyway.
    if (next < 0) throw new Error(`plan: unresolvable dependencies among ${pending.map((l) => l.name).join(', ')}`);
    const [layer] = pending.splice(next, 1);
    if (layer === undefined) break;
    ordered.push(layer);
    done.add(layer.name);
  }
  return ordered;
}

function externalInputs(layers: PlannedLayer[]): PlannedInput[] {
  const inputs = new Map<string, PlannedInput>();
  const use = (ref: string, role: InputRole, type: PlannedInput['type'], user: string) => {
    const key = `${role} ${ref}`;
    const input = inputs.get(key) ?? { ref, role, type, usedBy: [] };
    if (!input.usedBy.includes(user)) input.usedBy.push(user);
    inputs.set(key, input);
  };
  for (const layer of layers) {
    const base = baseReference(layer.from);
    if (base !== undefined && layer.from.type !== 'built' && layer.from.type !== 'scratch') use(base, 'from', layer.from.type, layer.name);
    for (const entry of layer.apply) {
      if (!isLayerName(entry)) use(entry, 'apply', entry.startsWith('oci:') ? 'oci' : 'docker', layer.name);
    }
  }
  return [...inputs.values()];
}
