import type { Logger } from 'pino';
import type { LayerChangesCache } from '../engine/layer-changes.ts';
import { setConditions } from './conditions.ts';
import type { BuildRequest, BuildResult } from './executor-local.ts';
import { splitKey, type Informer } from './informer.ts';
import type { ImageBuild, Kube, Stackerfile } from './kube.ts';
import { readRecipe } from './recipe-source.ts';
import type { ImageBuildStatus } from './resources.ts';
import { runSwap, stackerfileOpener } from './swap-runner.ts';

export interface Executor {
  run(request: BuildRequest): Promise<BuildResult>;
}

export interface ImageBuildControllerOptions {
  kube: Kube;
  stackerfiles: Informer<Stackerfile>;
  imageBuilds: Informer<ImageBuild>;
  executor: Executor;
  /** Layer listings for the swaps' overlap checks, kept across swaps (blobs never change). */
  layerChanges: LayerChangesCache;
  logger: Logger;
  onFinished?: (result: 'Succeeded' | 'Failed') => void;
}

const now = () => new Date().toISOString();

/**
 * Runs Build ImageBuilds to completion. The queue never hands one key to two workers, so a
 * build runs once per process; a build found Running that this process did not start was
 * interrupted by a restart of the operator and is run again.
 */
export class ImageBuildController {
  readonly #o: ImageBuildControllerOptions;
  /** UIDs this process finished: the cache may still show them Running for a moment. */
  readonly #finished = new Set<string>();

  constructor(options: ImageBuildControllerOptions) {
    this.#o = options;
  }

  async reconcile(key: string): Promise<void> {
    const build = this.#o.imageBuilds.get(key);
    if (build === undefined || build.metadata?.deletionTimestamp !== undefined) return;
    const phase = build.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed' || this.#finished.has(build.metadata?.uid ?? '')) return;
    if (phase === 'Running') {
      await this.#o.kube.event(build, 'Warning', 'Restarted', 'the operator restarted while this build ran; running it again');
    }
    const { namespace } = splitKey(key);
    const stackerfile = this.#o.stackerfiles.get(`${namespace}/${build.spec.stackerfileRef.name}`);
    if (stackerfile === undefined) return this.#finish(build, { ok: false, message: `Stackerfile ${namespace}/${build.spec.stackerfileRef.name} does not exist` });
    if (build.spec.recipeGeneration !== undefined && build.spec.recipeGeneration !== stackerfile.metadata?.generation) {
      return this.#finish(build, { ok: false, message: `superseded: the Stackerfile is at generation ${stackerfile.metadata?.generation}, this build is of ${build.spec.recipeGeneration}` });
    }
    if (build.spec.strategy === 'Swap') return this.#swap(build, stackerfile);
    const recipe = await readRecipe(this.#o.kube, stackerfile);
    if (!recipe.ok) return this.#finish(build, { ok: false, message: recipe.message });

    const startTime = now();
    await this.#write(build, { phase: 'Running', startTime, conditions: setConditions(build.status?.conditions, [{ type: 'Succeeded', status: 'Unknown', reason: 'Running', message: 'the build is running' }], undefined, startTime) });
    await this.#o.kube.event(build, 'Normal', 'Started', `building ${stackerfile.spec.output.registry}`);
    this.#o.logger.info({ imageBuild: key }, 'build started');
    const result = await this.#o.executor.run({
      recipe: recipe.text,
      registry: stackerfile.spec.output.registry,
      tags: stackerfile.spec.output.tags ?? ['latest'],
      substitutions: stackerfile.spec.substitutions ?? {},
    });
    await this.#finish(build, result, startTime);
  }

  /** A swap runs here, in the operator: no pod, only manifest writes and a tag move. */
  async #swap(build: ImageBuild, stackerfile: Stackerfile): Promise<void> {
    const startTime = now();
    const run = await runSwap(build, stackerfile, await stackerfileOpener(this.#o.kube, stackerfile), this.#o.layerChanges);
    const completionTime = now();
    const count = (result: string) => run.checks.filter((check) => check.result === result).length;
    const refused = run.checks.filter((check) => check.result === 'Refused');
    const message = `${count('Swapped')} swapped, ${count('UpToDate')} up to date, ${refused.length} refused${refused.map((check) => `\n${check.image}: ${check.message}`).join('')}`;
    await this.#write(build, {
      phase: 'Succeeded',
      startTime,
      completionTime,
      message,
      outputs: run.outputs,
      checks: run.checks,
      conditions: setConditions(build.status?.conditions, [{ type: 'Succeeded', status: 'True', reason: refused.length === 0 ? 'Swapped' : 'SwapRefused', message: message.split('\n')[0] ?? '' }], undefined, completionTime),
    });
    await this.#o.kube.event(build, refused.length === 0 ? 'Normal' : 'Warning', refused.length === 0 ? 'Swapped' : 'SwapRefused', message);
    this.#finished.add(build.metadata?.uid ?? '');
    this.#o.onFinished?.('Succeeded');
  }

  async #finish(build: ImageBuild, result: BuildResult, startTime = now()): Promise<void> {
    const completionTime = now();
    const phase = result.ok ? 'Succeeded' : 'Failed';
    const message = result.ok ? `${result.outputs.length} image(s) pushed` : result.message;
    await this.#write(build, {
      phase,
      startTime,
      completionTime,
      message,
      ...(result.ok ? { outputs: result.outputs } : {}),
      conditions: setConditions(build.status?.conditions, [{ type: 'Succeeded', status: result.ok ? 'True' : 'False', reason: phase, message: message.split('\n')[0] ?? '' }], undefined, completionTime),
    });
    await this.#o.kube.event(build, result.ok ? 'Normal' : 'Warning', phase, message);
    this.#o.logger.info({ imageBuild: build.metadata?.name, phase }, 'build finished');
    this.#finished.add(build.metadata?.uid ?? '');
    this.#o.onFinished?.(phase);
  }

  async #write(build: ImageBuild, status: ImageBuildStatus): Promise<void> {
    await this.#o.kube.patchStatus('ImageBuild', build.metadata?.namespace ?? 'default', build.metadata?.name ?? '', status);
  }
}
