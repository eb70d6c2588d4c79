import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { findCondition, kstatus, setConditions, type ConditionInput } from './conditions.ts';
import { objectKey, splitKey, type Informer } from './informer.ts';
import type { ImageBuild, Kube, Stackerfile } from './kube.ts';
import type { Result } from './queue.ts';
import { describeDiagnostics, readRecipe, validateRecipe } from './recipe-source.ts';
import { group, version, type StackerfileStatus } from './resources.ts';

export interface StackerfileControllerOptions {
  kube: Kube;
  stackerfiles: Informer<Stackerfile>;
  imageBuilds: Informer<ImageBuild>;
  logger: Logger;
  /** How long to wait before looking again for a missing ConfigMap. */
  missingRecipeRetryMs?: number;
  now?: () => string;
}

/** A deterministic name per generation and recipe, so a restarted operator never creates a second build. */
export function imageBuildName(stackerfile: Stackerfile, recipe: string): string {
  const hash = createHash('sha256').update(recipe).update('\0').update(JSON.stringify(stackerfile.spec.substitutions ?? {})).digest('hex').slice(0, 6);
  return `${stackerfile.metadata?.name}-${stackerfile.metadata?.generation ?? 0}-${hash}`;
}

/** Initial while nothing was published yet, RecipeChange after. */
export function buildReason(stackerfile: Stackerfile): 'Initial' | 'RecipeChange' {
  return (stackerfile.metadata?.generation ?? 1) <= 1 || (stackerfile.status?.images ?? []).length === 0 ? 'Initial' : 'RecipeChange';
}

/** The ImageBuilds of a Stackerfile (by controller owner reference). */
export function ownedBuilds(stackerfile: Stackerfile, builds: readonly ImageBuild[]): ImageBuild[] {
  const uid = stackerfile.metadata?.uid;
  return builds.filter((build) => build.metadata?.ownerReferences?.some((owner) => owner.controller === true && owner.uid === uid));
}

/** Finished builds beyond the history limits, oldest first; the build of the current generation is kept. */
export function buildsToPrune(stackerfile: Stackerfile, builds: readonly ImageBuild[]): ImageBuild[] {
  const finished = (phase: string) =>
    builds
      .filter((b) => b.status?.phase === phase && b.spec.recipeGeneration !== stackerfile.metadata?.generation)
      .sort((a, b) => (b.status?.completionTime ?? '').localeCompare(a.status?.completionTime ?? ''));
  const keep = stackerfile.spec.history ?? { succeeded: 10, failed: 5 };
  const current = builds.filter((b) => b.spec.recipeGeneration === stackerfile.metadata?.generation && b.status?.phase !== undefined);
  const room = (phase: string, limit: number) => Math.max(0, limit - current.filter((b) => b.status?.phase === phase).length);
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
      lastChange: { strategy: build.spec.strategy, reason: build.spec.reason, at: build.status?.completionTime ?? '', imageBuild: build.metadata?.name ?? '' },
    });
  }
  return [...byName.values()];
}

/** Reconciles one Stackerfile: validates its recipe, starts a build per generation, reports in status. */
export class StackerfileController {
  readonly #o: StackerfileControllerOptions;

  constructor(options: StackerfileControllerOptions) {
    this.#o = options;
  }

  async reconcile(key: string): Promise<Result | void> {
    const stackerfile = this.#o.stackerfiles.get(key);
    if (stackerfile === undefined || stackerfile.metadata?.deletionTimestamp !== undefined) return;
    const { namespace } = splitKey(key);
    const recipe = await readRecipe(this.#o.kube, stackerfile);
    if (!recipe.ok) {
      await this.#report(stackerfile, kstatus('Stalled', 'RecipeNotFound', recipe.message), { type: 'Warning', reason: 'RecipeNotFound' });
      return { requeueAfterMs: this.#o.missingRecipeRetryMs ?? 30_000 };
    }
    const loaded = await validateRecipe(recipe.text, recipe.file, stackerfile.spec.substitutions);
    if (!loaded.ok) {
      // No retry: the recipe only changes with the spec, which brings a new reconcile.
      await this.#report(stackerfile, kstatus('Stalled', 'InvalidRecipe', describeDiagnostics(loaded)), { type: 'Warning', reason: 'InvalidRecipe' });
      return;
    }

    const builds = ownedBuilds(stackerfile, this.#o.imageBuilds.list(namespace));
    const generation = stackerfile.metadata?.generation ?? 0;
    let current = builds.find((build) => build.spec.recipeGeneration === generation);
    if (current === undefined && stackerfile.spec.suspend) {
      await this.#report(stackerfile, kstatus('Stalled', 'Suspended', 'spec.suspend is true: no build is started; set it to false to build'));
      return;
    }
    if (current === undefined) current = await this.#createBuild(stackerfile, recipe.text);

    for (const old of buildsToPrune(stackerfile, builds)) await this.#o.kube.deleteImageBuild(namespace, old.metadata?.name ?? '');

    const buildName = current.metadata?.name ?? '';
    const phase = current.status?.phase;
    if (phase === 'Succeeded') {
      const images = imagesAfter(stackerfile.status?.images, current);
      const message = `${images.length} image${images.length === 1 ? '' : 's'} published by ImageBuild ${buildName}`;
      await this.#report(stackerfile, kstatus('Ready', 'Succeeded', message), undefined, { images, imageCount: images.length });
    } else if (phase === 'Failed') {
      const message = `ImageBuild ${buildName} failed: ${current.status?.message ?? 'no message'}`;
      await this.#report(stackerfile, kstatus('Stalled', 'BuildFailed', message), { type: 'Warning', reason: 'BuildFailed' });
    } else {
      await this.#report(stackerfile, kstatus('Reconciling', 'Building', `ImageBuild ${buildName} is ${phase ?? 'Pending'}`));
    }
  }

  async #createBuild(stackerfile: Stackerfile, recipe: string): Promise<ImageBuild> {
    const meta = stackerfile.metadata ?? {};
    const build: ImageBuild = {
      apiVersion: `${group}/${version}`,
      kind: 'ImageBuild',
      metadata: {
        name: imageBuildName(stackerfile, recipe),
        namespace: meta.namespace ?? 'default',
        labels: { 'restack.dev/stackerfile': meta.name ?? '' },
        ownerReferences: [
          { apiVersion: `${group}/${version}`, kind: 'Stackerfile', name: meta.name ?? '', uid: meta.uid ?? '', controller: true, blockOwnerDeletion: true },
        ],
      },
      spec: { stackerfileRef: { name: meta.name ?? '' }, strategy: 'Build', reason: buildReason(stackerfile), recipeGeneration: meta.generation ?? 0 },
    };
    if (await this.#o.kube.createImageBuild(build.metadata?.namespace ?? 'default', build)) {
      this.#o.logger.info({ stackerfile: objectKey(stackerfile), imageBuild: build.metadata?.name, reason: build.spec.reason }, 'created ImageBuild');
      await this.#o.kube.event(stackerfile, 'Normal', 'BuildCreated', `created ImageBuild ${build.metadata?.name} (${build.spec.reason})`);
    }
    return build;
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
    if (JSON.stringify(next) === JSON.stringify(status)) return;
    const { namespace, name } = splitKey(objectKey(stackerfile));
    await this.#o.kube.patchStatus('Stackerfile', namespace, name, next);
    const wanted = conditions.find((c) => c.status === 'True');
    const before = wanted === undefined ? undefined : findCondition(status.conditions, wanted.type);
    const changed = before === undefined || before.status !== 'True' || before.reason !== wanted?.reason || before.message !== wanted?.message;
    if (event !== undefined && wanted !== undefined && changed) await this.#o.kube.event(stackerfile, event.type, event.reason, wanted.message);
  }
}
