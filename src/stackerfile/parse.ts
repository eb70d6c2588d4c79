import { isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import { formatPath, type Diagnostic, type Position, type Severity } from './diagnostics.ts';
import { explainIssues } from './issues.ts';
import { buildConfigSchema, importKeys, layerSchema, type BuildConfig, type Layer } from './schema.ts';
import { substitute } from './substitute.ts';
import { LineIndex } from './text-position.ts';

/** A recipe that parsed and validated on its own (cross-file checks are the loader's). */
export interface Recipe {
  file: string;
  /** Layers in file order. */
  layers: Map<string, Layer>;
  config: BuildConfig;
  /** The text after substitution: what is built and recorded. */
  text: string;
  /** Values supplied by the user, to be redacted from anything published. */
  substitutedValues: string[];
  /** Every layer name the file defines, valid or not (so one bad layer does not hide others' references). */
  definedNames: ReadonlySet<string>;
  /** Where a field path is in the original file. */
  locate(path: (string | number)[]): Position;
  /** True when the field holds a placeholder that had no value: problems there are already reported. */
  isUnresolved(path: (string | number)[]): boolean;
}

export interface ParseOptions {
  file: string;
  substitutions: ReadonlyMap<string, string>;
}

/**
 * `recipe` is absent only when the file is not a YAML map at all; with schema errors it holds the
 * layers that did validate, so references between layers can still be checked.
 */
export interface ParseResult {
  recipe: Recipe | undefined;
  diagnostics: Diagnostic[];
}

const reservedConfigKey = 'config';
/** What an OCI tag may be: a layer's image is stored under its name in the output layout. */
const layerNamePattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

export function parseRecipe(original: string, options: ParseOptions): ParseResult {
  const { file } = options;
  const originalLines = new LineIndex(original);
  const substituted = substitute(original, file, options.substitutions);
  const diagnostics = [...substituted.diagnostics];
  const at = (offset: number) => originalLines.position(substituted.originalOffset(offset));
  const consequences = new Set(substituted.unresolvedOffsets);
  const report = (severity: Severity, offset: number, path: (string | number)[] | string, message: string) =>
    consequences.has(substituted.originalOffset(offset)) ||
    diagnostics.push({ severity, file, position: at(offset), path: typeof path === 'string' ? path : formatPath(path), message });

  const doc = parseDocument(substituted.text, { version: '1.1', merge: true, uniqueKeys: true, prettyErrors: false });
  if (doc.errors.length > 0) {
    for (const error of doc.errors) report('error', error.pos[0], 'yaml', `invalid YAML: ${firstLine(error.message)}`);
    return { recipe: undefined, diagnostics };
  }
  const top = doc.contents;
  if (top === null || (isScalar(top) && (top.value === null || top.value === ''))) {
    report('error', 0, [], 'the recipe is empty; it needs at least one layer (name: {from: ..., run: ...})');
    return { recipe: undefined, diagnostics };
  }
  if (!isMap(top)) {
    report('error', top.range?.[0] ?? 0, [], `the top level must be a map of layer names to layer definitions, not ${isSeq(top) ? 'a list' : 'a single value'}`);
    return { recipe: undefined, diagnostics };
  }

  const locate = (path: (string | number)[]) => nodeOffset(doc, path);
  const layers = new Map<string, Layer>();
  const definedNames = new Set<string>();
  let config: BuildConfig = {};
  for (const pair of top.items) {
    const keyNode = pair.key as Node | null;
    // A layer is named by the key as written: `y:` or `1:` are names, whatever YAML 1.1 makes of them.
    const name = isScalar(keyNode) ? (keyNode.source ?? String(keyNode.value)) : undefined;
    const keyOffset = keyNode?.range?.[0] ?? 0;
    if (name === undefined || name === '') {
      report('error', keyOffset, [], 'a layer name must be a non-empty string');
      continue;
    }
    let value: unknown;
    try {
      value = (pair.value as Node | null)?.toJS(doc);
    } catch (error) {
      // yaml refuses to expand more aliases than a recipe could need (a "billion laughs" document)
      report('error', (pair.value as Node | null)?.range?.[0] ?? keyOffset, [name], `cannot be read: ${firstLine((error as Error).message)}; write the values out instead of nesting aliases`);
      continue;
    }
    if (name !== reservedConfigKey && !layerNamePattern.test(name)) {
      report('error', keyOffset, [name], `layer name "${name}" is not a valid OCI tag (letters, digits, "_", "." and "-", not starting with "." or "-", at most 128): each layer is stored under its name`);
    }
    if (name === reservedConfigKey) {
      const result = buildConfigSchema.safeParse(value);
      if (result.success) config = result.data;
      for (const problem of result.success ? [] : explainIssues(result.error.issues, [name])) {
        report('error', locate(problem.path), problem.path, problem.message);
      }
      continue;
    }
    if (value === null || value === undefined) {
      report('error', keyOffset, [name], 'the layer has no definition; it needs at least from: {type: ...}');
      continue;
    }
    definedNames.add(name);
    // `import:` left empty beside `imports:` is accepted, as stacker accepts it
    if (typeof value === 'object' && 'imports' in value && (value as { import?: unknown }).import != null) {
      report('error', locate([name, 'import']), [name, 'import'], 'cannot be combined with imports; move these entries under imports (and read them from /stacker/imports)');
    }
    const result = layerSchema.safeParse(value);
    if (!result.success) {
      for (const problem of explainIssues(result.error.issues, [name])) {
        report('error', locate(problem.path), problem.path, problem.message);
      }
      continue;
    }
    for (const path of unknownImportKeys(name, result.data)) {
      report('warning', locate(path), path, `is not an import key and is ignored (import keys: ${importKeys.join(', ')})`);
    }
    if (result.data.import != null && result.data.imports === undefined) {
      report('warning', locate([name, 'import']), [name, 'import'], 'is deprecated; rename it to imports and read the files from /stacker/imports instead of /stacker');
    }
    layers.set(name, result.data);
  }
  if (layers.size === 0 && !diagnostics.some((d) => d.severity === 'error')) {
    report('error', 0, [], 'the recipe defines no layers');
  }

  const recipe: Recipe = {
    file,
    layers,
    config,
    text: substituted.text,
    substitutedValues: substituted.substitutedValues,
    definedNames,
    locate: (path) => at(locate(path)),
    isUnresolved: (path) => consequences.has(substituted.originalOffset(locate(path))),
  };
  return { recipe, diagnostics };
}

/** Reference problems of a recipe whose prerequisites define `externalLayers`. */
export function checkReferences(recipe: Recipe, externalLayers: ReadonlySet<string>): Diagnostic[] {
  const knownNames = new Set([...recipe.definedNames, ...externalLayers]);
  return crossLayerProblems(recipe.layers, knownNames)
    .filter((problem) => !recipe.isUnresolved(problem.path))
    .map((problem) => ({
    severity: 'error',
    file: recipe.file,
    position: recipe.locate(problem.path),
    path: formatPath(problem.path),
    message: problem.message,
  }));
}

function unknownImportKeys(name: string, layer: Layer): (string | number)[][] {
  const paths: (string | number)[][] = [];
  for (const field of ['imports', 'import'] as const) {
    const entries = layer[field];
    if (!Array.isArray(entries)) continue;
    entries.forEach((entry, index) => {
      if (typeof entry === 'string') return;
      for (const key of Object.keys(entry)) if (!importKeys.includes(key)) paths.push([name, field, index, key]);
    });
  }
  return paths;
}

/** A layer name used by `from: {type: built}`, `apply:` or a `stacker://` import: an edge of the layer graph. */
export interface LayerEdge {
  to: string;
  path: (string | number)[];
  field: 'built base' | 'apply entry' | 'stacker:// import';
}

/** The layer a `stacker://NAME/path` import reads from, or undefined for any other import. */
export function stackerImportLayer(path: string): string | undefined {
  if (!path.startsWith('stacker://')) return undefined;
  return path.slice('stacker://'.length).split('/')[0];
}

/** Names of other layers a layer builds on, applies or imports from, each with the field that names it. */
export function layerEdges(name: string, layer: Layer): LayerEdge[] {
  const edges: LayerEdge[] = [];
  if (layer.from.type === 'built' && layer.from.tag !== undefined) edges.push({ to: layer.from.tag, path: [name, 'from', 'tag'], field: 'built base' });
  (layer.apply ?? []).forEach((entry, index) => {
    if (isLayerName(entry)) edges.push({ to: entry, path: [name, 'apply', index], field: 'apply entry' });
  });
  for (const key of ['imports', 'import'] as const) {
    const entries = layer[key];
    if (entries === undefined || entries === null) continue;
    const paths: [string, (string | number)[]][] =
      typeof entries === 'string'
        ? [[entries, [name, key]]]
        : entries.map((entry, index) => (typeof entry === 'string' ? [entry, [name, key, index]] : [entry.path, [name, key, index, 'path']]));
    for (const [path, at] of paths) {
      const to = stackerImportLayer(path);
      if (to !== undefined) edges.push({ to, path: at, field: 'stacker:// import' });
    }
  }
  return edges;
}

export function isLayerName(applyEntry: string): boolean {
  return !applyEntry.startsWith('docker://') && !applyEntry.startsWith('oci:');
}

/** Problems between layers: bases and applied layers that do not exist, self references, cycles. */
function crossLayerProblems(layers: Map<string, Layer>, knownNames: ReadonlySet<string>) {
  const problems: { path: (string | number)[]; message: string }[] = [];
  for (const [name, layer] of layers) {
    for (const edge of layerEdges(name, layer)) {
      const verb = { 'built base': 'build on', 'apply entry': 'apply', 'stacker:// import': 'import from' }[edge.field];
      if (edge.to === name) {
        problems.push({ path: edge.path, message: `layer "${name}" cannot ${verb} itself` });
      } else if (!knownNames.has(edge.to)) {
        const names = [...knownNames].filter((n) => n !== name).join(', ') || 'none';
        problems.push({ path: edge.path, message: `${edge.field} "${edge.to}" names no layer of this recipe or its prerequisites (layers: ${names})` });
      }
    }
  }
  for (const cycle of findCycles(layers)) {
    const text = [...cycle.map((edge) => edge.from), cycle[0]?.from].join(' -> ');
    for (const edge of cycle) problems.push({ path: edge.path, message: `dependency cycle: ${text}; one of these layers must use a base from outside the cycle` });
  }
  return problems;
}

/** Each elementary cycle once, as the edges that form it, starting at its first layer in file order. */
function findCycles(layers: Map<string, Layer>): { from: string; path: (string | number)[] }[][] {
  const order = [...layers.keys()];
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: { from: string; path: (string | number)[] }[] = [];
  const cycles: { from: string; path: (string | number)[] }[][] = [];
  const visit = (name: string) => {
    state.set(name, 'visiting');
    const layer = layers.get(name);
    for (const edge of layer === undefined ? [] : layerEdges(name, layer)) {
      if (edge.to === name || !layers.has(edge.to)) continue;
      stack.push({ from: name, path: edge.path });
      if (state.get(edge.to) === 'visiting') {
        const start = stack.findIndex((entry) => entry.from === edge.to);
        cycles.push(stack.slice(start));
      } else if (state.get(edge.to) === undefined) {
        visit(edge.to);
      }
      stack.pop();
    }
    state.set(name, 'done');
  };
  for (const name of order) if (state.get(name) === undefined) visit(name);
  return cycles;
}

/** Offset of the node a field path points at; for a missing field, its nearest existing parent. */
function nodeOffset(doc: Document, path: (string | number)[]): number {
  let node: unknown = doc.contents;
  let offset = 0;
  for (const segment of path) {
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isPair(item) && isScalar(item.key) && (item.key.source ?? String(item.key.value)) === String(segment),
      );
      if (pair === undefined) break;
      offset = (pair.key as Node).range?.[0] ?? offset;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === 'number') {
      const item = node.items[segment] as Node | undefined;
      if (item === undefined) break;
      offset = item.range?.[0] ?? offset;
      node = item;
    } else {
      break;
    }
  }
  return offset;
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}
