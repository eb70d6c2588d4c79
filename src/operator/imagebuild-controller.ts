import type { Logger } from 'pino';
import type { LayerChangesCache } from '../engine/layer-changes.ts';
import { LruCache } from '../oci/lru.ts';
import { deriveRecordKey } from '../swap/layer-record.ts';
import { buildDigests } from './build-digest.ts';
import { setConditions } from './conditions.ts';
import type { BuildRequest, BuildResult, Executor } from './executor.ts';
import { splitKey, type Informer } from './informer.ts';
import type { ImageBuild, Kube, Stackerfile } from './kube.ts';
import type { Result } from './queue.ts';
import { readRecipe } from './recipe-source.ts';
import type { ImageBuildStatus } from './resources.ts';
import { SigningKeys } from './signing.ts';
import { controllerUid } from './stackerfile-controller.ts';
import { DependencyImages, runSwap, stackerfileOpener, swapFailure, type SwapRun } from './swap-runner.ts';

export interface ImageBuildControllerOptions {
  kube: Kube;
  stackerfiles: Informer<Stackerfile>;
  imageBuilds: Informer<ImageBuild>;
  executor: Executor;
  /** Layer listings for the swaps' overlap checks, kept across swaps (blobs never change). */
  layerChanges: LayerChangesCache;
  /**
   * The master layer record key: each Stackerfile's builds sign, and its swaps verify, change
   * records with a key derived from it for that Stackerfile alone (recordKeyOf). None: no records.
   */
  layerRecordKey?: Uint8Array;
  logger: Logger;
  onFinished?: (result: 'Succeeded' | 'Failed') => void;
}

const now = () => new Date().toISOString();

/**
 * A Stackerfile's layer record key: its own, so that a recipe (which runs code in its build pod,
 * where the key is) can forge records only its own Stackerfile's swaps trust.
 */
export function recordKeyOf(master: Uint8Array, stackerfile: Stackerfile): Uint8Array {
  return deriveRecordKey(master, `${stackerfile.metadata?.namespace ?? 'default'}/${stackerfile.metadata?.name ?? ''}`);
}

function identity(build: ImageBuild): BuildRequest['imageBuild'] {
  return { name: build.metadata?.name ?? '', namespace: build.metadata?.namespace ?? '', uid: build.metadata?.uid ?? '' };
}

/**
 * Why `build` no longer builds what its Stackerfile describes, or undefined when it still does:
 * it runs the recipe text whose digest it pinned, or nothing.
 */
export function supersededBy(build: ImageBuild, stackerfile: Stackerfile, recipe: string): string | undefined {
  const { recipeDigest, buildDigest } = build.spec;
  if (buildDigest === undefined) {
    const generation = stackerfile.metadata?.generation;
    const { recipeGeneration } = build.spec;
    return recipeGeneration === undefined || recipeGeneration === generation ? undefined : `superseded: the Stackerfile is at generation ${generation}, this build is of ${recipeGeneration}`;
  }
  const now = buildDigests(stackerfile.spec, recipe);
  if (recipeDigest !== undefined && now.recipeDigest !== recipeDigest) return `superseded: the recipe changed (${recipeDigest.slice(0, 19)} -> ${now.recipeDigest.slice(0, 19)}) before this build ran it`;
  if (now.buildDigest !== buildDigest) return 'superseded: the substitutions, output or builder of the Stackerfile changed since this build was created';
  return undefined;
}

/**
 * Drives ImageBuilds to completion without waiting for them: a Build is handed to the executor,
 * which answers at once (started, running, done) and re-queues the ImageBuild when its run moves
 * on. The queue never hands one key to two workers, so a build is stepped once at a time.
 */
export class ImageBuildController {
  readonly #o: ImageBuildControllerOptions;
  /** UIDs this process finished: the cache may still show them Running for a moment. The newest suffice. */
  readonly #finished = new LruCache<string, true>(4096);
  readonly #dependencies = new DependencyImages();
  readonly #signingKeys = new SigningKeys();
  /** What this process recorded of the builds it saw Running: the cache may still show them Pending. */
  readonly #running = new Map<string, { podName?: string; startTime: string }>();

  constructor(options: ImageBuildControllerOptions) {
    this.#o = options;
  }

  /** Entries of the caches this controller keeps, for the metrics. */
  cacheSizes(): Record<string, number> {
    return { 'finished-builds': this.#finished.size, 'dependency-images': this.#dependencies.size, 'running-builds': this.#running.size };
  }

  async reconcile(key: string): Promise<Result | void> {
    const build = this.#o.imageBuilds.get(key);
    if (build === undefined || build.metadata?.deletionTimestamp !== undefined) return;
    const phase = build.status?.phase;
    if (phase === 'Succeeded' || phase === 'Failed' || this.#finished.has(build.metadata?.uid ?? '')) return;
    const { namespace } = splitKey(key);
    const stackerfile = this.#o.stackerfiles.get(`${namespace}/${build.spec.stackerfileRef.name}`);
    if (stackerfile === undefined) return this.#finish(build, { ok: false, message: `Stackerfile ${namespace}/${build.spec.stackerfileRef.name} does not exist` });
    // By uid, not name: a Stackerfile deleted and created again under the same name is another object.
    if (controllerUid(build) !== stackerfile.metadata?.uid) {
      return this.#finish(build, { ok: false, message: `Stackerfile ${namespace}/${build.spec.stackerfileRef.name} is not the one this build was made for (its controller uid is ${controllerUid(build) ?? 'missing'}): it was deleted and created again` });
    }
    const recipe = await readRecipe(this.#o.kube, stackerfile);
    if (!recipe.ok) return this.#finish(build, { ok: false, message: recipe.message });
    const superseded = supersededBy(build, stackerfile, recipe.text);
    if (superseded !== undefined) return this.#finish(build, { ok: false, message: superseded });
    if (build.spec.strategy === 'Swap') return this.#swap(build, stackerfile);

    const { output, builder, substitutions } = stackerfile.spec;
    const request: BuildRequest = {
      imageBuild: identity(build),
      stackerfileName: build.spec.stackerfileRef.name,
      recipe: recipe.text,
      registry: output.registry,
      tags: output.tags ?? ['latest'],
      insecure: output.insecure ?? false,
      substitutions: substitutions ?? {},
      ...(output.pushSecretRef === undefined ? {} : { pushSecretName: output.pushSecretRef.name }),
      ...(output.signing === undefined ? {} : { signingSecretName: output.signing.keySecretRef.name }),
      ...(this.#o.layerRecordKey === undefined ? {} : { layerRecordKey: recordKeyOf(this.#o.layerRecordKey, stackerfile) }),
      builder: builder ?? { storage: 'overlay' },
      ...(build.status?.podName === undefined ? {} : { podName: build.status.podName }),
    };
    const progress = await this.#o.executor.step(request);
    if (progress.state === 'done') return this.#finish(build, progress.result);
    // A pod that has not started is looked at again without news: its start deadline, its push Secret.
    const recheck = progress.recheckAfterMs === undefined ? undefined : { requeueAfterMs: progress.recheckAfterMs };
    const uid = request.imageBuild.uid;
    const wasRunning = phase === 'Running' || this.#running.has(uid);
    if (wasRunning && progress.state === 'running' && progress.podName === (this.#running.get(uid)?.podName ?? build.status?.podName)) return recheck;

    const startTime = this.#running.get(uid)?.startTime ?? build.status?.startTime ?? now();
    await this.#write(build, {
      phase: 'Running',
      startTime,
      ...(progress.podName === undefined ? {} : { podName: progress.podName }),
      conditions: setConditions(build.status?.conditions, [{ type: 'Succeeded', status: 'Unknown', reason: 'Running', message: 'the build is running' }], undefined, startTime),
    });
    this.#running.set(uid, { startTime, ...(progress.podName === undefined ? {} : { podName: progress.podName }) });
    if (!wasRunning) {
      await this.#o.kube.event(build, 'Normal', 'Started', `building ${output.registry}${progress.podName === undefined ? '' : ` in pod ${progress.podName}`}`);
      this.#o.logger.info({ imageBuild: key, pod: progress.podName }, 'build started');
    } else if (progress.state === 'started') {
      await this.#o.kube.event(build, 'Warning', 'Restarted', 'the operator restarted while this build ran and could not follow it; running it again');
    }
    return recheck;
  }

  /** A swap runs here, in the operator: no pod, only manifest writes and a tag move. */
  async #swap(build: ImageBuild, stackerfile: Stackerfile): Promise<void> {
    const startTime = now();
    let run: SwapRun;
    try {
      const signing = await this.#signingKeys.forStackerfile(this.#o.kube, stackerfile);
      run = await runSwap(build, stackerfile, await stackerfileOpener(this.#o.kube, stackerfile), {
        layerChanges: this.#o.layerChanges,
        dependencies: this.#dependencies,
        ...(signing === undefined ? {} : { signing }),
        ...(this.#o.layerRecordKey === undefined ? {} : { layerRecordKey: recordKeyOf(this.#o.layerRecordKey, stackerfile) }),
      });
    } catch (error) {
      const failure = swapFailure(error, stackerfile);
      if (failure === undefined) throw error;
      return this.#finish(build, { ok: false, message: failure });
    }
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
    // A swap that went through is in this status, and in the Stackerfile's once folded in; in a
    // fan-out of thousands, one Event each would be a quarter of the API writes.
    if (refused.length > 0) await this.#o.kube.event(build, 'Warning', 'SwapRefused', message);
    this.#finished.set(build.metadata?.uid ?? '', true);
    this.#o.onFinished?.('Succeeded');
  }

  async #finish(build: ImageBuild, result: BuildResult): Promise<void> {
    const completionTime = now();
    const startTime = this.#running.get(build.metadata?.uid ?? '')?.startTime ?? build.status?.startTime ?? completionTime;
    const phase = result.ok ? 'Succeeded' : 'Failed';
    const message = result.ok ? `${result.outputs.length} image(s) pushed` : result.message;
    await this.#write(build, {
      phase,
      startTime,
      completionTime,
      message,
      ...(result.ok ? { outputs: result.outputs } : result.retryable === true ? { retryable: true } : {}),
      conditions: setConditions(build.status?.conditions, [{ type: 'Succeeded', status: result.ok ? 'True' : 'False', reason: phase, message: message.split('\n')[0] ?? '' }], undefined, completionTime),
    });
    await this.#o.kube.event(build, result.ok ? 'Normal' : 'Warning', phase, message);
    this.#o.logger.info({ imageBuild: build.metadata?.name, phase }, 'build finished');
    this.#finished.set(build.metadata?.uid ?? '', true);
    this.#running.delete(build.metadata?.uid ?? '');
    this.#o.onFinished?.(phase);
    await this.#o.executor.release(identity(build));
  }

  async #write(build: ImageBuild, status: ImageBuildStatus): Promise<void> {
    this.#o.imageBuilds.remember((await this.#o.kube.patchStatus('ImageBuild', build.metadata?.namespace ?? 'default', build.metadata?.name ?? '', status)) as ImageBuild);
  }
}
