import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { findCondition, kstatus, setConditions, type ConditionInput } from './conditions.ts';
import { objectKey, splitKey, type Informer } from './informer.ts';
import type { Refusal } from './build-policy.ts';
import type { InputWatcher } from './input-watcher.ts';
import { statusCode, type ImageBuild, type Kube, type Stackerfile } from './kube.ts';
import type { Result } from './queue.ts';
import { describeDiagnostics, readRecipe, validateRecipe } from './recipe-source.ts';
import { buildDigests } from './build-digest.ts';
import { imageBuildStem, labelValue, shortHash } from './names.ts';
import { group, version, type BuilderSpec, type ImageBuildSpec, type PlannedBuildSpec, type StackerfileStatus } from './resources.ts';
import { defaultBuildRetry, following, manualRebuild, planUpdate, rebuildAnnotation, retryAfterFailure, type RetryPolicy } from './updates.ts';
import { defaultSchedule } from '../watch/scheduler.ts';

export interface StackerfileControllerOptions {
  kube: Kube;
  stackerfiles: Informer<Stackerfile>;
  imageBuilds: Informer<ImageBuild>;
  logger: Logger;
  /** Watches the inputs of published images; without it, images are built but never updated. */
  inputs?: InputWatcher;
  /** For Stackerfiles without spec.updates.schedule. */
  defaultSchedule?: string;
  /** Why the executor cannot build with a spec.builder (Executor.refuse): such a Stackerfile is Stalled before any ImageBuild. */
  refuseBuilder?: (builder: BuilderSpec) => Refusal | undefined;
  /** Watches the ConfigMaps of spec.recipeFrom: an edit there re-queues the Stackerfile. */
  recipes?: { track(stackerfile: string, configMap: string | undefined): void };
  /** How failed builds that may pass on their own are tried again (default: defaultBuildRetry). */
  buildRetry?: RetryPolicy;
  /** How long to wait before looking again for a missing ConfigMap. */
  missingRecipeRetryMs?: number;
  now?: () => string;
}

/** The label on every ImageBuild naming its Stackerfile (bounded: names.ts). */
export const stackerfileLabel = 'restack.dev/stackerfile';

/**
 * The name of the build of a spec: deterministic (a restarted operator finds the build it created
 * instead of making another), and new along the history (it chains the previous latest build and
 * the Stackerfile's uid), so returning to an earlier recipe builds again. The generation is there
 * for people reading `kubectl get ib`.
 */
export function specBuildName(stackerfile: Stackerfile, buildDigest: string, previous: string | undefined): string {
  const hash = shortHash(`${stackerfile.metadata?.uid ?? ''}\0${buildDigest}\0${previous ?? ''}`, 6);
  return `${imageBuildStem(stackerfile.metadata?.name ?? '')}-${stackerfile.metadata?.generation ?? 0}-${hash}`;
}

/** Whether `build` is of what the spec builds now; a build from before buildDigest existed, when it is of this generation. */
export function builtFrom(build: ImageBuild, stackerfile: Stackerfile, buildDigest: string): boolean {
  return build.spec.buildDigest === undefined ? build.spec.recipeGeneration === stackerfile.metadata?.generation : build.spec.buildDigest === buildDigest;
}

/** A build of the spec itself (not an update): what a failure of it stalls until the spec changes. */
function isSpecBuild(build: ImageBuild): boolean {
  return build.spec.strategy === 'Build' && (build.spec.reason === 'Initial' || build.spec.reason === 'RecipeChange');
}

/** Initial while nothing was published yet, RecipeChange after. */
export function buildReason(stackerfile: Stackerfile): 'Initial' | 'RecipeChange' {
  // Not the generation: an edit of the recipeFrom ConfigMap changes the recipe at the same one.
  return (stackerfile.status?.images ?? []).length === 0 ? 'Initial' : 'RecipeChange';
}

/** The uid of an object's controller (the Stackerfile of an ImageBuild): the ImageBuild cache is indexed by it. */
export function controllerUid(object: ImageBuild): string | undefined {
  return object.metadata?.ownerReferences?.find((owner) => owner.controller === true)?.uid;
}

/** Finished builds beyond the history limits, oldest first; the builds of the current generation in use are kept. */
export function buildsToPrune(stackerfile: Stackerfile, builds: readonly ImageBuild[], inUse: ReadonlySet<string>): ImageBuild[] {
  const finished = (phase: string) =>
    builds
      .filter((b) => b.status?.phase === phase && !inUse.has(b.metadata?.name ?? ''))
      .sort((a, b) => (b.status?.completionTime ?? '').localeCompare(a.status?.completionTime ?? ''));
  const keep = stackerfile.spec.history ?? { succeeded: 10, failed: 5 };
  const kept = builds.filter((b) => inUse.has(b.metadata?.name ?? ''));
  const room = (phase: string, limit: number) => Math.max(0, limit - kept.filter((b) => b.status?.phase === phase).length);
  return [...finished('Succeeded').slice(room('Succeeded', keep.succeeded)), ...finished('Failed').slice(room('Failed', keep.failed))];
}

/** The published images after a succeeded build: its outputs replace the images of the same name. */
export function imagesAfter(images: StackerfileStatus['images'], build: ImageBuild): NonNullable<StackerfileStatus['images']> {
  const byName = new Map((images ?? []).map((image) => [image.name, image]));
  for (const output of build.status?.outputs ?? []) {
    const previous = byName.get(output.name);
    byName.set(output.name, {
      ...previous,
      name: output.name,
      ref: output.ref,
      digest: output.digest,
      ...(output.inputs === undefined ? {} : { inputs: output.inputs }),
      lastChange: { strategy: build.spec.strategy, reason: build.spec.reason, at: build.status?.completionTime ?? '', imageBuild: build.metadata?.name ?? '' },
    });
  }
  return [...byName.values()];
}

/**
 * The ImageBuilds created after `recorded` (status.latestImageBuild), oldest first: each names the
 * one it follows in spec.previous. A swap is written to the Stackerfile's status only once it is
 * done, so this is how a status write lost to a crash is made up from the ImageBuilds, and how a
 * swap under way is found. Of two that follow the same build (only an operator without this chain
 * could make them), the newer counts.
 */
export function buildsSince(recorded: string | undefined, builds: readonly ImageBuild[]): ImageBuild[] {
  if (recorded === undefined) return [];
  const next = new Map<string, ImageBuild>();
  for (const build of builds) {
    const previous = build.spec.previous;
    const rival = previous === undefined ? undefined : next.get(previous);
    if (previous !== undefined && (rival === undefined || createdBefore(rival, build))) next.set(previous, build);
  }
  const chain: ImageBuild[] = [];
  const seen = new Set([recorded]);
  for (let build = next.get(recorded); build !== undefined && !seen.has(build.metadata?.name ?? ''); build = next.get(build.metadata?.name ?? '')) {
    seen.add(build.metadata?.name ?? '');
    chain.push(build);
  }
  return chain;
}

/** Creation order; the name breaks ties within the API server's one-second timestamps. */
function createdBefore(a: ImageBuild, b: ImageBuild): boolean {
  const at = (build: ImageBuild) => `${new Date(build.metadata?.creationTimestamp ?? 0).toISOString()}\0${build.metadata?.name ?? ''}`;
  return at(a) < at(b);
}

/** The published images after each succeeded build of `builds` in turn (imagesAfter); folding one again changes nothing. */
export function imagesSince(images: StackerfileStatus['images'], builds: readonly (ImageBuild | undefined)[]): NonNullable<StackerfileStatus['images']> {
  return builds.reduce((folded, build) => (build?.status?.phase === 'Succeeded' ? imagesAfter(folded, build) : folded), images ?? []);
}

/** Status records where images are published as `host/repository:tag`; inputs are written as references. */
function asReference(published: string): string {
  return published.startsWith('docker://') || published.startsWith('oci:') ? published : `docker://${published}`;
}

/**
 * Reconciling while a build is pending or running; what it is for is in its spec.cause and the
 * Event that created it. A swap under way is not shown: it is recorded once done.
 */
function underWay(build: ImageBuild): ConditionInput[] {
  return kstatus('Reconciling', 'Building', `ImageBuild ${build.metadata?.name ?? ''} (build, ${build.spec.reason}) is ${build.status?.phase ?? 'Pending'}`);
}

/** The same change planned again after it failed: not retried until something else changes. */
function sameWork(a: ImageBuildSpec, b: PlannedBuildSpec): boolean {
  return a.strategy === b.strategy && a.reason === b.reason && a.cause === b.cause;
}

/** Reconciles one Stackerfile: validates its recipe, starts a build per generation, reports in status. */
export class StackerfileController {
  readonly #o: StackerfileControllerOptions;
  /** Per Stackerfile: a digest of the recipe, file and substitutions last validated, and the verdict. */
  readonly #validated = new Map<string, { fingerprint: string; errors: string | undefined }>();

  constructor(options: StackerfileControllerOptions) {
    this.#o = options;
  }

  async reconcile(key: string): Promise<Result | void> {
    try {
      return await this.#reconcile(key);
    } catch (error) {
      // Our cache was behind our own last write: look again once the watch has caught up.
      if (statusCode(error) === 409) return { requeueAfterMs: 200 };
      throw error;
    }
  }

  async #reconcile(key: string): Promise<Result | void> {
    const stackerfile = this.#o.stackerfiles.get(key);
    if (stackerfile === undefined || stackerfile.metadata?.deletionTimestamp !== undefined) {
      this.#o.inputs?.forget(key);
      this.#o.recipes?.track(key, undefined);
      this.#validated.delete(key);
      return;
    }
    this.#o.recipes?.track(key, stackerfile.spec.recipeFrom?.configMapKeyRef.name);
    const { namespace } = splitKey(key);
    const recipe = await readRecipe(this.#o.kube, stackerfile);
    if (!recipe.ok) {
      await this.#report(stackerfile, kstatus('Stalled', 'RecipeNotFound', recipe.message), { type: 'Warning', reason: 'RecipeNotFound' });
      return { requeueAfterMs: this.#o.missingRecipeRetryMs ?? 30_000 };
    }
    const recipeErrors = await this.#recipeErrors(key, recipe.text, recipe.file, stackerfile.spec.substitutions);
    if (recipeErrors !== undefined) {
      // No retry: the recipe only changes with the spec or its ConfigMap, each of which brings a new reconcile.
      await this.#report(stackerfile, kstatus('Stalled', 'InvalidRecipe', recipeErrors), { type: 'Warning', reason: 'InvalidRecipe' });
      return;
    }
    // Also no retry: what is refused changes with the spec, or with the operator's flags (a restart).
    const refusal = this.#o.refuseBuilder?.(stackerfile.spec.builder ?? { storage: 'overlay' });
    if (refusal !== undefined) {
      await this.#report(stackerfile, kstatus('Stalled', refusal.reason, refusal.message), { type: 'Warning', reason: refusal.reason });
      return;
    }

    const builds = this.#o.imageBuilds.indexed(stackerfile.metadata?.uid ?? '');
    const pinned = buildDigests(stackerfile.spec, recipe.text);
    const recorded = await this.#latestBuild(stackerfile, builds);
    if (recorded === 'unseen') return { requeueAfterMs: 500 };
    // What the status does not record yet: a swap under way, or one whose status write a crash lost.
    const since = buildsSince(stackerfile.status?.latestImageBuild, builds);
    let latest = since.at(-1) ?? recorded;
    const images = imagesSince(stackerfile.status?.images, [recorded, ...since]);
    // Written with every status that records a newer build than status.latestImageBuild, so none's result is skipped.
    const folded = isDeepStrictEqual(images, stackerfile.status?.images ?? []) ? {} : { images, imageCount: images.length };
    // A failed build of the spec waits for an edit of the spec, any edit (kstatus' Stalled).
    const editedAfterFailure = latest?.status?.phase === 'Failed' && isSpecBuild(latest) && latest.spec.recipeGeneration !== stackerfile.metadata?.generation;
    if (latest === undefined || !builtFrom(latest, stackerfile, pinned.buildDigest) || editedAfterFailure) {
      if (stackerfile.spec.suspend) {
        await this.#report(stackerfile, kstatus('Stalled', 'Suspended', 'spec.suspend is true: no build is started; set it to false to build'));
        return;
      }
      const name = specBuildName(stackerfile, pinned.buildDigest, latest?.metadata?.name);
      latest = builds.find((build) => build.metadata?.name === name) ?? (await this.#createBuild(stackerfile, name, { strategy: 'Build', reason: buildReason(stackerfile), ...following(latest) }, buildReason(stackerfile), pinned));
    }

    const inUse = new Set([latest, recorded, ...since].map((build) => build?.metadata?.name ?? ''));
    for (const old of buildsToPrune(stackerfile, builds, inUse)) await this.#o.kube.deleteImageBuild(namespace, old.metadata?.name ?? '');

    const latestName = latest.metadata?.name ?? '';
    const phase = latest.status?.phase;
    if (phase !== 'Succeeded' && phase !== 'Failed') {
      // A swap is written to the status once, when it is done (see the end of this method).
      if (latest.spec.strategy === 'Swap') return;
      await this.#report(stackerfile, underWay(latest), undefined, { ...folded, latestImageBuild: latestName });
      return;
    }
    if (phase === 'Failed') {
      const retry = manualRebuild(stackerfile, latest) ?? retryAfterFailure(stackerfile, latest, this.#o.buildRetry ?? defaultBuildRetry, Date.now());
      if (retry?.action === 'wait') {
        await this.#report(stackerfile, kstatus('Reconciling', 'RetryScheduled', retry.message), undefined, { ...folded, latestImageBuild: latestName });
        return { requeueAfterMs: retry.ms };
      }
      if (retry?.action === 'build' && retry.spec.strategy === 'Swap') {
        // As below: the status before it, then the swap, recorded once done.
        await this.#report(stackerfile, [], undefined, folded);
        await this.#createBuild(stackerfile, retry.name, retry.spec, retry.event, pinned);
        return;
      }
      if (retry?.action === 'build') {
        const next = await this.#createBuild(stackerfile, retry.name, retry.spec, retry.event, pinned);
        const requested = retry.spec.reason === 'Manual' ? stackerfile.metadata?.annotations?.[rebuildAnnotation] : undefined;
        await this.#report(stackerfile, underWay(next), undefined, { ...folded, latestImageBuild: next.metadata?.name ?? '', ...(requested === undefined ? {} : { lastRebuildRequest: requested }) });
        return;
      }
    }
    if (phase === 'Failed' && isSpecBuild(latest)) {
      const message = `ImageBuild ${latestName} failed: ${latest.status?.message ?? 'no message'}`;
      await this.#report(stackerfile, kstatus('Stalled', 'BuildFailed', message), { type: 'Warning', reason: 'BuildFailed' }, { ...folded, latestImageBuild: latestName });
      return;
    }

    const published = { ...stackerfile, status: { ...stackerfile.status, images } };
    this.#watchInputs(key, published, stackerfile.status?.images);
    // Up to date or not is unknown until every input was checked: nothing is written before (never
    // Ready too early, and one status write where there were two); the watcher re-queues it then.
    if (this.#o.inputs?.awaitingCheck(key) === true) return;
    const problems = this.#o.inputs?.problems(key);
    const inputConditions = problems === undefined ? [] : [{ type: 'InputsAvailable', status: problems.ok ? 'True' : 'False', reason: problems.reason, message: problems.message } as const];
    // In a cycle every update would trigger another: none is made until the cycle is broken.
    const updating = !stackerfile.spec.suspend && problems?.reason !== 'DependencyCycle';
    const plan = !updating || this.#o.inputs === undefined ? undefined : planUpdate(published, latest, this.#o.inputs.currentDigests(key));
    const imagesStatus = { images, imageCount: images.length, latestImageBuild: latestName };
    const work = plan?.action === 'build' && !(phase === 'Failed' && sameWork(latest.spec, plan.spec)) ? plan : undefined;
    if (work === undefined || work.spec.strategy === 'Swap') {
      const state =
        phase === 'Failed'
          ? kstatus('Stalled', 'UpdateFailed', `ImageBuild ${latestName} (${latest.spec.strategy}, ${latest.spec.reason}) failed: ${latest.status?.message ?? 'no message'}; the images stay at their previous digests`)
          : kstatus('Ready', 'Succeeded', `${images.length} image${images.length === 1 ? '' : 's'} published; last change by ImageBuild ${latestName}`);
      await this.#report(stackerfile, [...state, ...inputConditions], phase === 'Failed' ? { type: 'Warning', reason: 'UpdateFailed' } : undefined, imagesStatus);
      // A swap takes moments: it is not recorded as under way, but once done, when the next
      // reconcile finds it after status.latestImageBuild (buildsSince) and folds in its outputs.
      // One status write a swap; the swap runs on the images the status written just above names.
      if (work !== undefined) await this.#createBuild(published, work.name, work.spec, work.event, pinned);
      return;
    }
    // The build's name is deterministic, so creating it before recording it cannot make two.
    const next = await this.#createBuild(published, work.name, work.spec, work.event, pinned);
    const requested = work.spec.reason === 'Manual' ? stackerfile.metadata?.annotations?.[rebuildAnnotation] : undefined;
    // The same conditions the next reconcile reports while the build is pending, so that one writes nothing.
    await this.#report(stackerfile, [...underWay(next), ...inputConditions], undefined, {
      ...imagesStatus,
      latestImageBuild: next.metadata?.name ?? '',
      ...(requested === undefined ? {} : { lastRebuildRequest: requested }),
    });
  }

  /**
   * The recipe's errors, one a line, or undefined when it is valid. Most reconciles answer the
   * operator's own writes (status, ImageBuilds) and see the same recipe: the last verdict on each
   * Stackerfile's recipe is kept, so a fan-out does not parse every recipe seven times.
   */
  async #recipeErrors(key: string, text: string, file: string, substitutions: Record<string, string> | undefined): Promise<string | undefined> {
    // A digest, not the text: thousands of Stackerfiles would otherwise keep a second copy of every recipe.
    const fingerprint = createHash('sha256').update(JSON.stringify([text, file, substitutions ?? {}])).digest('base64');
    const known = this.#validated.get(key);
    if (known?.fingerprint === fingerprint) return known.errors;
    const loaded = await validateRecipe(text, file, substitutions);
    const errors = loaded.ok ? undefined : describeDiagnostics(loaded);
    this.#validated.set(key, { fingerprint, errors });
    return errors;
  }

  /**
   * The ImageBuild status.latestImageBuild names, if any. One just created may not be
   * in the cache yet: it is then read from the API server, and `unseen` means "it exists, look
   * again shortly".
   */
  async #latestBuild(stackerfile: Stackerfile, builds: readonly ImageBuild[]): Promise<ImageBuild | undefined | 'unseen'> {
    const name = stackerfile.status?.latestImageBuild;
    if (name === undefined) return undefined;
    const cached = builds.find((build) => build.metadata?.name === name);
    if (cached !== undefined) return cached;
    const build = await this.#o.kube.getImageBuild(stackerfile.metadata?.namespace ?? 'default', name).catch((error: unknown) => {
      if (statusCode(error) === 404) return null;
      throw error;
    });
    // Only a build of this very Stackerfile: one of the same name deleted and created again is another object.
    return build === null || controllerUid(build) !== stackerfile.metadata?.uid ? undefined : 'unseen';
  }

  /** Tells the watcher what to poll (the inputs of the published images) and, when digests changed, starts the cascade. */
  #watchInputs(key: string, stackerfile: Stackerfile, before: StackerfileStatus['images']): void {
    const watcher = this.#o.inputs;
    if (watcher === undefined) return;
    const images = stackerfile.status?.images ?? [];
    const secret = stackerfile.spec.output.pushSecretRef?.name;
    watcher.watch(key, {
      inputs: images.flatMap((image) => (image.inputs ?? []).map((input) => ({ ref: input.ref, role: input.role }))),
      outputs: images.map((image) => asReference(image.ref)),
      schedule: stackerfile.spec.updates?.schedule ?? this.#o.defaultSchedule ?? defaultSchedule,
      // Checked with the credentials its builds and swaps use.
      ...(secret === undefined ? {} : { credentials: `${splitKey(key).namespace}/${secret}` }),
    });
    const previous = new Map((before ?? []).map((image) => [image.ref, image.digest]));
    const changed = images.filter((image) => previous.get(image.ref) !== image.digest).map((image) => asReference(image.ref));
    if (changed.length > 0) watcher.published(changed);
  }

  async #createBuild(stackerfile: Stackerfile, name: string, spec: PlannedBuildSpec, why: string, pinned: { recipeDigest: string; buildDigest: string }): Promise<ImageBuild> {
    const meta = stackerfile.metadata ?? {};
    const build: ImageBuild = {
      apiVersion: `${group}/${version}`,
      kind: 'ImageBuild',
      metadata: {
        name,
        namespace: meta.namespace ?? 'default',
        labels: { [stackerfileLabel]: labelValue(meta.name ?? '') },
        ownerReferences: [
          { apiVersion: `${group}/${version}`, kind: 'Stackerfile', name: meta.name ?? '', uid: meta.uid ?? '', controller: true, blockOwnerDeletion: true },
        ],
      },
      spec: { stackerfileRef: { name: meta.name ?? '' }, ...spec, recipeGeneration: meta.generation ?? 0, ...pinned },
    };
    const created = await this.#o.kube.createImageBuild(build.metadata?.namespace ?? 'default', build);
    if (created !== undefined) {
      this.#o.imageBuilds.remember(created);
      this.#o.logger.info({ stackerfile: objectKey(stackerfile), imageBuild: name, strategy: spec.strategy, reason: spec.reason }, 'created ImageBuild');
      // A swap has no Event: its spec.cause says why, and in a fan-out of thousands one Event each
      // would be a quarter of the API writes. A refused or failed swap still gets a Warning.
      if (spec.strategy !== 'Swap') await this.#o.kube.event(stackerfile, 'Normal', 'BuildCreated', `created ImageBuild ${name}: ${why}`);
    }
    return created ?? build;
  }

  /** Writes status only when it changed; emits the Event only when the condition is new. */
  async #report(
    stackerfile: Stackerfile,
    conditions: ConditionInput[],
    event?: { type: 'Normal' | 'Warning'; reason: string },
    extra: Partial<StackerfileStatus> = {},
  ): Promise<void> {
    const status = stackerfile.status ?? {};
    const generation = stackerfile.metadata?.generation;
    const next: StackerfileStatus = {
      ...status,
      ...extra,
      ...(generation === undefined ? {} : { observedGeneration: generation }),
      conditions: setConditions(status.conditions, conditions, generation, (this.#o.now ?? (() => new Date().toISOString()))()),
    };
    // Not a comparison of JSON text: the API server returns keys sorted, so the echo of a write
    // would differ from what was written and be written again.
    if (isDeepStrictEqual(next, status)) return;
    const { namespace, name } = splitKey(objectKey(stackerfile));
    // This reconcile already acted on everything the new status says: its echo needs no other.
    this.#o.stackerfiles.remember((await this.#o.kube.patchStatus('Stackerfile', namespace, name, next, stackerfile.metadata?.resourceVersion)) as Stackerfile, { notify: false });
    const wanted = conditions.find((c) => c.status === 'True');
    const before = wanted === undefined ? undefined : findCondition(status.conditions, wanted.type);
    const changed = before === undefined || before.status !== 'True' || before.reason !== wanted?.reason || before.message !== wanted?.message;
    if (event !== undefined && wanted !== undefined && changed) await this.#o.kube.event(stackerfile, event.type, event.reason, wanted.message);
    // Inputs that cannot be checked hold back every update: say so once, where `kubectl describe` shows it.
    const inputs = conditions.find((c) => c.type === 'InputsAvailable');
    const inputsBefore = findCondition(status.conditions, 'InputsAvailable');
    if (inputs?.status === 'False' && (inputsBefore?.status !== 'False' || inputsBefore.reason !== inputs.reason)) {
      await this.#o.kube.event(stackerfile, 'Warning', inputs.reason, inputs.message);
    }
  }
}
