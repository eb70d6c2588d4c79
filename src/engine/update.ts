import { OciError } from '../oci/errors.ts';
import type { Platform } from '../oci/types.ts';
import type { Recipe } from '../stackerfile/parse.ts';
import { baseReference, type Plan, type PlannedLayer } from '../stackerfile/plan.ts';
import { readProvenance } from '../swap/image.ts';
import type { Provenance } from '../swap/provenance.ts';
import { imageName, parseReference } from '../oci/reference.ts';
import { isLayerName } from '../stackerfile/parse.ts';
import { buildRecipes, pushReference, recipeLayerReference, type BuildRequest } from './build.ts';
import type { BuildEvent } from './build/events.ts';
import { layerRecipeRecord, recipeAnnotation } from './build/image-config.ts';
import { readPlatformImage } from './compose.ts';
import { readStoredImage, type OpenedReference, type PlatformImage } from './images.ts';
import type { LayerChangesCache } from './layer-changes.ts';
import type { ImageSigning } from './signing.ts';
import { swapDependency } from './swap.ts';

// The vocabulary of a decision; watch/decide.ts makes it (watch sits above the engine).

export interface RecordedInput {
  ref: string;
  digest: string;
}

/** What a published image says it was made from (its provenance and recipe record). */
export interface RecordedImage {
  base: RecordedInput | null;
  applied: readonly RecordedInput[];
  /** The layer's recipe as recorded in the image; undefined when the image carries none. */
  recipe: string | undefined;
}

/** Everything a decision about one image looks at. */
export interface ImageFacts {
  /** The image's layer name, for messages. */
  name: string;
  /** undefined: never published, or published without restack provenance. */
  recorded: RecordedImage | undefined;
  /** Why `recorded` is missing, for the message; e.g. "has no restack provenance". */
  missingBecause?: string;
  /**
   * Why what the image records cannot be trusted against the recipe (its provenance names inputs
   * the recipe does not): the image is rebuilt, never swapped from its own say-so.
   */
  inconsistent?: string;
  /** The layer's recipe as the current recipe file would record it. */
  recipe: string;
  /** Each input's current digest by reference; an input not in the map is taken as unchanged. */
  current: ReadonlyMap<string, string>;
}

export type RebuildReason = 'Initial' | 'RecipeChange' | 'BaseUpdate' | 'ApplyUpdate';

export interface DependencyChange {
  ref: string;
  from: string;
  to: string;
}

export type Decision =
  | { action: 'nothing'; message: string }
  | { action: 'swap'; dependencies: DependencyChange[]; message: string }
  | { action: 'rebuild'; reason: RebuildReason; message: string };

/** Why the swap engine would not swap, as SwapOutcome.refusal carries it. */
export interface SwapRefusal {
  reason: string;
  message: string;
}

export interface Decider {
  decide(facts: ImageFacts): Decision;
  /** The rebuild that replaces a swap the engine refused. */
  afterRefusal(dependency: DependencyChange, refusal: SwapRefusal): Extract<Decision, { action: 'rebuild' }>;
}

/** What happened to one image. `swapped` and `rebuilt` moved its tags. */
export interface UpdateResult {
  image: string;
  ref: string;
  action: 'nothing' | 'swapped' | 'rebuilt';
  reason?: RebuildReason;
  message: string;
  before: string | null;
  after: string;
}

export type UpdateEvent =
  | BuildEvent
  | { event: 'decision'; image: string; ref: string; action: Decision['action']; reason?: RebuildReason; message: string }
  | ({ event: 'image-done' } & UpdateResult)
  | { event: 'update-done'; images: UpdateResult[]; elapsedMs: number };

export interface UpdateRequest {
  plan: Plan;
  recipes: readonly Recipe[];
  /** Where the images are published: `docker://host/prefix` or `oci:DIR` (one layout per image). */
  prefix: string;
  tags: readonly string[];
  decider: Decider;
  /** How a layer is rebuilt: the build settings except what the update chooses. */
  build: Omit<BuildRequest, 'plan' | 'recipes' | 'push' | 'signing' | 'layerRecordKey' | 'open' | 'onEvent'>;
  /** Sign and attest every image swapped or rebuilt, before its tags move (docs/signing.md). */
  signing?: ImageSigning;
  /** Rebuilds record their own layers' changes under this key; swaps trust records that verify under it (swap/layer-record.ts). */
  layerRecordKey?: Uint8Array;
  /** Opens a reference as written; `insecure` from the recipe's `from.insecure`. */
  open: (ref: string, insecure: boolean) => OpenedReference;
  layerChanges: LayerChangesCache;
  onEvent: (event: UpdateEvent) => void;
}

interface Published {
  image: PlatformImage;
  provenance: Provenance | undefined;
  recipe: string | undefined;
}

function isMissing(error: unknown): boolean {
  return error instanceof OciError && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN');
}

/** The published image and its provenance; undefined when nothing is published at `target`. */
async function readPublished(target: OpenedReference): Promise<Published | undefined> {
  let platforms: PlatformImage[];
  try {
    platforms = (await readStoredImage(target)).platforms;
  } catch (error) {
    if (isMissing(error)) return undefined;
    throw error;
  }
  const [image] = platforms;
  if (image === undefined) return undefined;
  const recipe = image.image.manifest.annotations?.[recipeAnnotation] ?? image.image.config.config?.Labels?.[recipeAnnotation];
  return { image, provenance: readProvenance(image.image, target.display), recipe };
}

/** The references a build of the layer records for its inputs, as this update publishes: the only refs an update follows. */
export interface RecipeInputs {
  base: string | null;
  applied: readonly string[];
}

export function recipeInputs(request: Pick<UpdateRequest, 'plan' | 'prefix' | 'tags' | 'build'>, planned: PlannedLayer): RecipeInputs {
  const byName = new Map(request.plan.layers.map((layer) => [layer.name, layer]));
  const naming = { push: { prefix: request.prefix, tags: request.tags }, ociDir: request.build.ociDir };
  const layerRef = (name: string) => recipeLayerReference(naming, byName.get(name), name);
  const { from } = planned;
  const base = from.type === 'built' ? layerRef(from.tag as string) : (baseReference(from) ?? null);
  return { base: from.type === 'tar' ? null : base, applied: planned.apply.map((entry) => (isLayerName(entry) ? layerRef(entry) : entry)) };
}

function sameInput(a: string, b: string): boolean {
  try {
    return imageName(parseReference(a)) === imageName(parseReference(b));
  } catch {
    return a === b;
  }
}

/**
 * What the image records, on the recipe's terms: each input the recipe names with the digest the
 * provenance gives it. Provenance is written by whoever pushed the image, so its references are
 * compared with the recipe's, never followed; any difference is reported instead.
 */
export function recordedAgainstRecipe(provenance: Provenance, expected: RecipeInputs, recipe: string | undefined): RecordedImage | { inconsistent: string } {
  const recordedBase = provenance.base?.ref ?? null;
  const baseMatches = recordedBase === null || expected.base === null ? recordedBase === expected.base : sameInput(recordedBase, expected.base);
  if (!baseMatches) return { inconsistent: `records the base ${recordedBase ?? 'scratch'}, the recipe names ${expected.base ?? 'none'}` };
  const recorded = provenance.applied.map((entry) => entry.ref);
  if (recorded.length !== expected.applied.length || recorded.some((ref, index) => !sameInput(ref, expected.applied[index] as string))) {
    return { inconsistent: `records applied ${recorded.join(', ') || 'nothing'}, the recipe applies ${expected.applied.join(', ') || 'nothing'}` };
  }
  return {
    base: provenance.base === null || expected.base === null ? null : { ref: expected.base, digest: provenance.base.digest },
    applied: provenance.applied.map((entry, index) => ({ ref: expected.applied[index] as string, digest: entry.digest })),
    recipe,
  };
}

/** The digest each recorded input has now, for the published image's platform (as the build resolved it). */
async function currentDigests(request: UpdateRequest, planned: PlannedLayer, recorded: RecordedImage, platform: Platform): Promise<Map<string, string>> {
  const baseRef = baseReference(planned.from);
  const inputs = [...(recorded.base === null ? [] : [recorded.base]), ...recorded.applied];
  const current = new Map<string, string>();
  for (const { ref } of inputs) {
    const insecure = ref === baseRef && planned.from.insecure === true;
    current.set(ref, (await readPlatformImage(request.open(ref, insecure), platform)).image.digest);
  }
  return current;
}

/** The layer and every layer of the recipe it is built from, in plan order. */
function planFor(plan: Plan, name: string): Plan {
  const byName = new Map(plan.layers.map((layer) => [layer.name, layer]));
  const needed = new Set<string>();
  const visit = (layer: string) => {
    if (needed.has(layer)) return;
    needed.add(layer);
    for (const dependency of byName.get(layer)?.dependsOn ?? []) visit(dependency);
  };
  visit(name);
  const layers = plan.layers.filter((layer) => needed.has(layer.name));
  const inputs = plan.inputs.filter((input) => input.usedBy.some((user) => needed.has(user)));
  return { order: layers.map((layer) => layer.name), layers, inputs };
}

async function rebuild(request: UpdateRequest, name: string): Promise<string> {
  const outputs = await buildRecipes({
    ...request.build,
    plan: planFor(request.plan, name),
    recipes: request.recipes,
    push: { prefix: request.prefix, tags: request.tags, layers: [name] },
    ...(request.signing === undefined ? {} : { signing: request.signing }),
    ...(request.layerRecordKey === undefined ? {} : { layerRecordKey: request.layerRecordKey }),
    open: request.open,
    // the update reports its own summary; a build's summary would repeat it
    onEvent: (event) => {
      if (event.event !== 'build-done') request.onEvent(event);
    },
  });
  const built = outputs.find((output) => output.name === name);
  if (built === undefined) throw new Error(`update: the build of ${name} produced no image`);
  return built.digest;
}

/** Swaps each changed dependency in turn; a refusal becomes the rebuild decision. */
async function swapAll(request: UpdateRequest, target: OpenedReference, dependencies: DependencyChange[]): Promise<{ after: string } | Extract<Decision, { action: 'rebuild' }>> {
  let after = '';
  for (const dependency of dependencies) {
    const outcome = await swapDependency({
      target,
      dependency: request.open(dependency.ref, false),
      extraTags: request.tags.slice(1),
      layerChanges: request.layerChanges,
      ...(request.layerRecordKey === undefined ? {} : { layerRecordKey: request.layerRecordKey }),
      ...(request.signing === undefined ? {} : { signing: request.signing }),
    });
    if (outcome.refusal !== undefined) return request.decider.afterRefusal(dependency, outcome.refusal);
    after = outcome.after;
  }
  return { after };
}

/** What the decision looks at: the image's record, on the recipe's terms, and its inputs' digests now. */
async function imageFacts(request: UpdateRequest, planned: PlannedLayer, published: Published | undefined): Promise<ImageFacts> {
  const recipe = request.recipes.find((candidate) => candidate.file === planned.recipe);
  const facts = { name: planned.name, recipe: layerRecipeRecord(planned.name, planned.definition, recipe?.substitutedValues ?? []), current: new Map<string, string>() };
  if (published === undefined) return { ...facts, recorded: undefined };
  if (published.provenance === undefined) return { ...facts, recorded: undefined, missingBecause: 'has no restack provenance' };
  const recorded = recordedAgainstRecipe(published.provenance, recipeInputs(request, planned), published.recipe);
  if ('inconsistent' in recorded) return { ...facts, recorded: { base: null, applied: [], recipe: published.recipe }, inconsistent: recorded.inconsistent };
  return { ...facts, recorded, current: await currentDigests(request, planned, recorded, published.image.platform) };
}

async function updateImage(request: UpdateRequest, planned: PlannedLayer): Promise<UpdateResult> {
  const ref = pushReference(request.prefix, planned.name, request.tags[0] ?? 'latest');
  const target = request.open(ref, false);
  const published = await readPublished(target);
  const facts = await imageFacts(request, planned, published);
  let decision = request.decider.decide(facts);
  const announce = (chosen: Decision) =>
    request.onEvent({ event: 'decision', image: planned.name, ref, action: chosen.action, ...(chosen.action === 'rebuild' ? { reason: chosen.reason } : {}), message: chosen.message });
  announce(decision);
  const before = published === undefined ? null : published.image.descriptor.digest;
  if (decision.action === 'nothing') return { image: planned.name, ref, action: 'nothing', message: decision.message, before, after: before ?? '' };
  if (decision.action === 'swap') {
    const swapped = await swapAll(request, target, decision.dependencies);
    if ('after' in swapped) return { image: planned.name, ref, action: 'swapped', message: decision.message, before, after: swapped.after };
    decision = swapped;
    announce(decision);
  }
  const after = await rebuild(request, planned.name);
  return { image: planned.name, ref, action: 'rebuilt', reason: decision.reason, message: decision.message, before, after };
}

/**
 * Brings every published image of the recipe up to date, in plan order so that a rebuilt or
 * swapped image is already current when the images applying it are looked at (the cascade):
 * each image is swapped, rebuilt or left alone as the decider says. Stops at the first failure.
 */
export async function updateRecipes(request: UpdateRequest): Promise<UpdateResult[]> {
  const started = Date.now();
  const results: UpdateResult[] = [];
  for (const planned of request.plan.layers) {
    if (planned.buildOnly) continue;
    const result = await updateImage(request, planned);
    request.onEvent({ event: 'image-done', ...result });
    results.push(result);
  }
  request.onEvent({ event: 'update-done', images: results, elapsedMs: Date.now() - started });
  return results;
}
