import { cp } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { detectIdentity, type BuildIdentity } from '../build/idmap.ts';
import { RootfsResolver, splitEntryPath } from '../build/rootfs-path.ts';
import type { StorageDriver } from '../build/storage/driver.ts';
import { openStorage, type StorageChoice } from '../build/storage/open.ts';
import { parseReference } from '../oci/reference.ts';
import { escapesOf } from '../stackerfile/host-paths.ts';
import type { Recipe } from '../stackerfile/parse.ts';
import type { Plan, PlannedLayer } from '../stackerfile/plan.ts';
import type { ComposedImage, OwnLayer } from '../swap/compose.ts';
import { readPlatformImage } from './compose.ts';
import type { OpenedReference } from './images.ts';
import { LayerChangesCache } from './layer-changes.ts';
import { pathsChangedBySeveral } from './build/apply-overlaps.ts';
import { composeLayerImage, writeLayerImage } from './build/assemble.ts';
import { BuildCacheIndex, type CacheEntry } from './build/cache-index.ts';
import { layerCacheKey } from './build/cache-key.ts';
import { bindSpecs, buildEnvironment } from './build/environment.ts';
import { LayerBuildError } from './build/errors.ts';
import type { BuildEvent, BuildOutput, BuildStep, EventSink } from './build/events.ts';
import { CommandError, createdTimestamp, imageCommands, layerRecipeRecord, type ImageCommands } from './build/image-config.ts';
import { layerImports, overlayDirSpecs } from './build/import-plan.ts';
import { acquireImport, checkInside, type AcquiredImport, type ImportContext } from './build/imports.ts';
import { resolveInputs, type LayerInputs } from './build/inputs.ts';
import { layerOrigins, layerSources } from './build/layer-origins.ts';
import { containerLayer, tarballLayer, type OwnLayerContext } from './build/own-layers.ts';
import { pushImage, type PushedBlobs } from './build/push.ts';
import { recordOwnChanges } from './build/record-changes.ts';
import { cacheTag, RegistryLayerCache } from './build/registry-cache.ts';
import { signPushed, type ImageSigning } from './signing.ts';

export type LayerType = 'tar' | 'squashfs';

export interface BuildRequest {
  plan: Plan;
  /** The loaded recipes (prerequisites first): their substituted values are redacted from outputs. */
  recipes: readonly Recipe[];
  /** The output OCI layout: one ref per layer, named by the layer. */
  ociDir: string;
  /** Build storage (rootfs trees, caches, the build cache index). */
  rootsDir: string;
  storage: StorageChoice;
  layerType: LayerType;
  noCache: boolean;
  /**
   * After every layer is built: copy each non-build_only image to `<prefix>/<name>:<tag>`, or only
   * the `layers` named (`restack update` rebuilds one image and must not re-push the others).
   */
  push?: { prefix: string; tags: readonly string[]; layers?: readonly string[] };
  /** Sign and attest each pushed image before its tags move (docs/signing.md). */
  signing?: ImageSigning;
  /**
   * Record each own layer's changed paths on its descriptor, signed with this key, so that swaps
   * holding the key read no own layer (swap/layer-record.ts, docs/security.md). Also trusted for
   * the applied images' records when checking which paths they share.
   */
  layerRecordKey?: Uint8Array;
  /** A registry repository shared as a second-level build cache, e.g. `docker://host/cache` (docs/build-cache.md). */
  cacheRepository?: string;
  shellOnFail: boolean;
  sourceDateEpoch: number | undefined;
  /**
   * Local paths (imports, overlay_dirs, binds, tar bases) only inside the recipe's directory, and
   * no OCI layouts: how the operator builds a tenant's recipe. The CLI allows any path by default.
   */
  recipeDirOnly?: boolean;
  /** The environment build_env_passthrough picks from. */
  hostEnvironment: Readonly<Record<string, string | undefined>>;
  /** Opens a reference as written; `insecure` from the recipe's `from.insecure`. */
  open: (ref: string, insecure: boolean) => OpenedReference;
  onEvent: EventSink;
}

interface BuildContext {
  request: BuildRequest;
  identity: BuildIdentity;
  storage: StorageDriver;
  cache: BuildCacheIndex;
  layerChanges: LayerChangesCache;
  workDir: string;
  created: string;
  layers: ReadonlyMap<string, PlannedLayer>;
  recipes: ReadonlyMap<string, Recipe>;
  registryCache: RegistryLayerCache | undefined;
  /** Blobs already in a registry (the cache repository), for the push to mount instead of upload. */
  pushed: PushedBlobs;
}

/** Registry repositories are lowercase; layer names (A) need not be. */
export function pushReference(prefix: string, layer: string, tag: string): string {
  return `${prefix.replace(/\/+$/, '')}/${layer.toLowerCase()}:${tag}`;
}

function layoutReference(ociDir: string, layer: string): string {
  return `oci:${ociDir}:${layer}`;
}

/** The reference provenance names a layer of the build by: where it is published, else its place in the output layout. */
export function recipeLayerReference(request: Pick<BuildRequest, 'push' | 'ociDir'>, layer: PlannedLayer | undefined, name: string): string {
  const { push } = request;
  return push !== undefined && layer?.buildOnly === false ? pushReference(push.prefix, name, push.tags[0] ?? 'latest') : layoutReference(request.ociDir, name);
}

/** An earlier layer of the build: read from the layout; named in provenance by where it is published. */
function recipeLayer(context: BuildContext, name: string): { opened: OpenedReference; ref: string } {
  return {
    opened: context.request.open(layoutReference(context.request.ociDir, name), false),
    ref: recipeLayerReference(context.request, context.layers.get(name), name),
  };
}

/** Copies a file or directory out of an earlier layer's image (for `stacker://` imports and tar bases). */
async function grab(context: BuildContext, layer: string, path: string, into: string): Promise<string> {
  const { opened } = recipeLayer(context, layer);
  const { image } = await readPlatformImage(opened, undefined);
  const chain = layerSources(image, image.manifest.layers.map(() => opened));
  const working = await context.storage.createWorking(chain, `grab.${layer}`);
  try {
    const found = await new RootfsResolver(working.rootfs).target(splitEntryPath(path), `stacker://${layer}${path}`);
    const copy = join(into, basename(path) || 'root');
    if (found !== undefined) await cp(found, copy, { recursive: true, verbatimSymlinks: true });
    return copy;
  } finally {
    await context.storage.discard(working);
  }
}

function runScript(value: string | string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  const script = Array.isArray(value) ? value.join('\n') : value;
  return script.trim() === '' ? undefined : script;
}

function commandsOf(planned: PlannedLayer): ImageCommands {
  try {
    return imageCommands(planned.definition);
  } catch (error) {
    if (!(error instanceof CommandError)) throw error;
    throw new LayerBuildError('COMMAND_INVALID', planned.name, `layer ${planned.name}: ${error.field}: ${error.message}`, `close the quote in ${planned.name}.${error.field}, or write it as a list of words`);
  }
}

async function warnAboutSharedPaths(context: BuildContext, planned: PlannedLayer, composed: ComposedImage, inputs: LayerInputs): Promise<void> {
  if (inputs.applied.length < 2) return;
  const applied = await Promise.all(
    composed.provenance.applied.map(async (entry, index) => {
      const { opened } = inputs.applied[index] as LayerInputs['applied'][number];
      const slice = composed.manifest.layers.slice(entry.layers.start, entry.layers.start + entry.layers.count);
      return { ref: entry.ref, layers: await Promise.all(slice.map((layer) => context.layerChanges.get(opened.store, opened.repository, layer, context.request.layerRecordKey))) };
    }),
  );
  const shared = pathsChangedBySeveral(applied);
  if (shared.length === 0) return;
  context.request.onEvent({
    event: 'warning',
    layer: planned.name,
    message: `${shared.length} path${shared.length === 1 ? '' : 's'} changed by more than one applied image; the later one wins`,
    paths: shared.map((entry) => `${entry.path} (${entry.refs.join(', ')})`),
  });
}

/** The layer's own blob layers: the tar base, then the run step (with imports and generate_labels). */
async function makeOwnLayers(
  context: BuildContext,
  planned: PlannedLayer,
  inputs: LayerInputs,
  imports: readonly AcquiredImport[],
  step: (step: BuildStep, message: string) => void,
): Promise<Omit<CacheEntry, 'layer'>> {
  const { request } = context;
  const recipeDir = dirname(resolve(planned.recipe));
  const layout = request.open(layoutReference(request.ociDir, planned.name), false);
  const ownContext: OwnLayerContext = {
    layer: planned.name,
    storage: context.storage,
    identity: context.identity,
    workDir: context.workDir,
    layout,
    format: request.layerType === 'squashfs' ? 'squashfs' : 'tar+gzip',
    sourceDateEpoch: request.sourceDateEpoch,
    created: context.created,
    step,
    output: (line) => request.onEvent({ event: 'output', layer: planned.name, line }),
  };
  const own: OwnLayer[] = [];
  if (inputs.tarball !== undefined) {
    const layer = await tarballLayer(ownContext, inputs.tarball);
    if (layer !== undefined) own.push(layer);
  }
  const composed = composeLayerImage(inputs, own);
  await warnAboutSharedPaths(context, planned, composed, inputs);
  const { definition } = planned;
  const script = runScript(definition.run);
  const labelScript = runScript(definition.generate_labels);
  if (script === undefined && labelScript === undefined && !imports.some((item) => item.spec.dest !== undefined)) return { own, labels: {} };
  const origins = layerOrigins(composed.provenance, inputs.base?.opened ?? null, inputs.applied.map((input) => input.opened), layout);
  const result = await containerLayer(ownContext, {
    chain: layerSources(composed, origins),
    imports,
    importsAt: layerImports(definition, recipeDir).location,
    script,
    labelScript,
    binds: bindSpecs(definition, recipeDir),
    environment: buildEnvironment(definition, planned.name, request.hostEnvironment),
    shellOnFail: request.shellOnFail,
  });
  if (result.own !== undefined) own.push(result.own);
  return { own, labels: result.labels };
}

async function ownBlobsPresent(layout: OpenedReference, own: readonly OwnLayer[]): Promise<boolean> {
  for (const layer of own) if (!(await layout.store.hasBlob(layout.repository, layer.descriptor))) return false;
  return true;
}

function describeBase(planned: PlannedLayer): string {
  const { from } = planned;
  if (from.type === 'built') return `built ${from.tag ?? ''}`;
  if (from.type === 'scratch') return 'scratch';
  return `${from.type} ${from.url ?? ''}`;
}

async function buildLayer(context: BuildContext, planned: PlannedLayer, index: number): Promise<BuildOutput> {
  const { request } = context;
  const started = Date.now();
  const emit = (event: BuildEvent) => request.onEvent(event);
  const step = (name: BuildStep, message: string) => emit({ event: 'step', layer: planned.name, step: name, message, elapsedMs: Date.now() - started });
  emit({ event: 'layer-start', layer: planned.name, index, total: context.layers.size, buildOnly: planned.buildOnly });
  const commands = commandsOf(planned);
  const recipeDir = dirname(resolve(planned.recipe));
  const importContext: ImportContext = {
    layer: planned.name,
    workDir: context.workDir,
    grab: (layer, path, into) => grab(context, layer, path, into),
    ...(request.recipeDirOnly === true ? { confineTo: recipeDir } : {}),
  };
  if (request.recipeDirOnly === true) {
    for (const [index, bind] of bindSpecs(planned.definition, recipeDir).entries()) await checkInside(planned.name, `binds.${index}`, bind.source, bind.source, recipeDir);
  }

  step('resolve', `${describeBase(planned)}${planned.apply.length === 0 ? '' : ` + apply ${planned.apply.join(', ')}`}`);
  const inputs = await resolveInputs(planned, {
    open: request.open,
    recipeLayer: (name) => recipeLayer(context, name),
    acquire: (spec) => acquireImport(importContext, spec, 'base'),
    recipeDir,
  });
  const specs = [...layerImports(planned.definition, recipeDir).specs, ...overlayDirSpecs(planned.definition, recipeDir)];
  if (specs.length > 0) step('imports', specs.map((spec) => spec.written).join(', '));
  const imports: AcquiredImport[] = [];
  for (const [slot, spec] of specs.entries()) imports.push(await acquireImport(importContext, spec, String(slot)));

  const key = layerCacheKey({
    definition: planned.definition,
    base: inputs.tarball !== undefined ? { tarball: inputs.tarball.contentHash } : inputs.base === null ? null : { digest: inputs.base.image.descriptor.digest },
    applied: inputs.applied.map((input) => input.image.descriptor.digest),
    imports: imports.map((item) => item.contentHash),
    sourceDateEpoch: request.sourceDateEpoch,
    layerType: request.layerType,
    platform: inputs.platform,
  });
  const target = request.open(layoutReference(context.request.ociDir, planned.name), false);
  // as stacker: what a bind mount holds is not tracked, so a layer with binds is always rebuilt
  const useCache = !request.noCache && (planned.definition.binds ?? []).length === 0;
  let entry = useCache ? context.cache.get(key) : undefined;
  if (entry !== undefined && !(await ownBlobsPresent(target, entry.own))) entry = undefined;
  const local = entry !== undefined;
  if (entry === undefined && useCache) entry = await fromRegistryCache(context, planned.name, key, target);
  const cached = entry !== undefined;
  step('cache', `${useCache ? (local ? 'hit' : cached ? 'hit (registry)' : 'miss') : request.noCache ? 'disabled' : 'skipped (binds)'} ${key.slice('sha256:'.length, 19)}`);
  if (entry === undefined) {
    entry = { layer: planned.name, ...(await makeOwnLayers(context, planned, inputs, imports, step)) };
    if (useCache) await toRegistryCache(context, planned.name, key, entry, target);
  }
  if (!local) await context.cache.put(key, entry);

  step('image', target.display);
  const recipe = context.recipes.get(planned.recipe);
  const own = await recordOwnChanges(entry.own, target, context.layerChanges, request.layerRecordKey);
  const { digest, provenance } = await writeLayerImage(target, inputs, own, {
    layer: planned.definition,
    commands,
    generatedLabels: entry.labels,
    created: context.created,
    recipeRecord: layerRecipeRecord(planned.name, planned.definition, recipe?.substitutedValues ?? []),
  });
  emit({ event: 'layer-done', layer: planned.name, digest, cached, ownLayers: entry.own.length, bytes: entry.own.reduce((sum, own) => sum + own.descriptor.size, 0), elapsedMs: Date.now() - started });
  return { name: planned.name, ref: target.display, digest, buildOnly: planned.buildOnly, cached, provenance, pushed: [] };
}

/** The registry cache's entry for the key, its blobs now in the layout; undefined on a miss (an untrusted or unreadable entry is reported and skipped). */
async function fromRegistryCache(context: BuildContext, layer: string, key: string, layout: OpenedReference): Promise<CacheEntry | undefined> {
  const cache = context.registryCache;
  if (cache === undefined) return undefined;
  const found = await cache.fetch(key, layout).catch((error: unknown) => ({ miss: 'unreadable' as const, reason: error instanceof Error ? error.message : String(error) }));
  if ('miss' in found) {
    if (found.miss !== 'absent') context.request.onEvent({ event: 'warning', layer, message: `registry cache ${cache.repository.display}: entry ${cacheTag(key)} ignored: ${found.reason}`, paths: [] });
    return undefined;
  }
  rememberInRegistry(context, cache, found.entry);
  return { ...found.entry, layer };
}

/** Best effort: a layer that cannot be written to the registry cache is a warning, never a failed build. */
async function toRegistryCache(context: BuildContext, layer: string, key: string, entry: CacheEntry, layout: OpenedReference): Promise<void> {
  const cache = context.registryCache;
  if (cache === undefined) return;
  try {
    await cache.publish(key, entry, layout);
    rememberInRegistry(context, cache, entry);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    context.request.onEvent({ event: 'warning', layer, message: `registry cache ${cache.repository.display}: could not write ${cacheTag(key)}: ${reason}`, paths: [] });
  }
}

function rememberInRegistry(context: BuildContext, cache: RegistryLayerCache, entry: CacheEntry): void {
  for (const own of entry.own) context.pushed.set(`${cache.repository.store.location} ${own.descriptor.digest}`, cache.repository);
}

async function pushOutputs(context: BuildContext, outputs: BuildOutput[], push: NonNullable<BuildRequest['push']>, buildStarted: Date): Promise<void> {
  const started = Date.now();
  const { signing } = context.request;
  const { pushed } = context;
  for (const output of outputs) {
    if (output.buildOnly || (push.layers !== undefined && !push.layers.includes(output.name))) continue;
    const [first = 'latest', ...more] = push.tags;
    const ref = pushReference(push.prefix, output.name, first);
    context.request.onEvent({ event: 'step', layer: output.name, step: 'push', message: [ref, ...more.map((tag) => `:${tag}`)].join(' '), elapsedMs: Date.now() - started });
    const [source, target] = [context.request.open(output.ref, false), context.request.open(ref, false)];
    await pushImage(source, output.digest, target, more, pushed, signing && ((written) => signPushed(signing, source, target, written, buildStarted)));
    output.pushed = [first, ...more].map((tag) => `${pushReference(push.prefix, output.name, tag)}@${output.digest}`);
  }
}

/** Refuses bad push references before anything is built. */
function checkPushReferences(plan: Plan, push: NonNullable<BuildRequest['push']>): void {
  for (const layer of plan.layers) {
    if (layer.buildOnly) continue;
    for (const tag of push.tags) parseReference(pushReference(push.prefix, layer.name, tag));
  }
}

/** A confined build refuses, before anything is built, a host path outside the recipe's directory. */
function refuseEscapes(recipes: readonly Recipe[]): void {
  const [first] = recipes.flatMap(escapesOf);
  if (first === undefined) return;
  throw new LayerBuildError('HOST_PATH_REFUSED', first.layer, `layer ${first.layer}: ${first.use.path.join('.')}: ${first.message}`, 'restack build allows such paths without --recipe-dir-only; the operator never does');
}

/**
 * Builds every layer of the plan in order into the output layout, reusing cached layers, then
 * pushes the published ones. Events report progress; a LayerBuildError says what to fix.
 */
export async function buildRecipes(request: BuildRequest): Promise<BuildOutput[]> {
  const started = Date.now();
  if (request.recipeDirOnly === true) refuseEscapes(request.recipes);
  if (request.push !== undefined) checkPushReferences(request.plan, request.push);
  const identity = await detectIdentity();
  // the storage drivers and LXC work with absolute paths (mounts are made from other directories)
  const rootsDir = resolve(request.rootsDir);
  const context: BuildContext = {
    request,
    identity,
    storage: await openStorage(rootsDir, request.storage, identity),
    cache: await BuildCacheIndex.open(join(rootsDir, 'build-cache.json')),
    layerChanges: new LayerChangesCache(join(rootsDir, 'build', 'layer-changes')),
    workDir: join(rootsDir, 'build'),
    created: createdTimestamp(request.sourceDateEpoch),
    layers: new Map(request.plan.layers.map((layer) => [layer.name, layer])),
    recipes: new Map(request.recipes.map((recipe) => [recipe.file, recipe])),
    registryCache: request.cacheRepository === undefined ? undefined : new RegistryLayerCache(request.open(request.cacheRepository, false)),
    pushed: new Map(),
  };
  const outputs: BuildOutput[] = [];
  for (const [index, planned] of request.plan.layers.entries()) outputs.push(await buildLayer(context, planned, index + 1));
  if (request.push !== undefined) await pushOutputs(context, outputs, request.push, new Date(started));
  request.onEvent({ event: 'build-done', outputs, elapsedMs: Date.now() - started });
  return outputs;
}
