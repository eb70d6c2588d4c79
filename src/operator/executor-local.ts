import { spawn, type ChildProcess } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve as resolvePath } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import type { BuildEvent } from '../engine/build/events.ts';
import { Semaphore } from '../oci/registry/semaphore.ts';
import { errorResult, resultOutputs } from '../engine/build/result-message.ts';
import { buildResultOf, type BuildProgress, type BuildRequest, type BuildResult, type Executor, type ExecutorContext } from './executor.ts';

interface Run {
  child?: ChildProcess;
  result?: BuildResult;
  /** Where a failed run step left its rootfs mounted (the builder's `error` event says). */
  keptRootfs?: string;
}

const keptLines = 20;

/** What a build takes from the operator's environment: the tools' search path, locale and proxies, reproducible timestamps. */
export const builderVariables = [
  'PATH', 'LANG', 'LC_ALL', 'TZ', 'SOURCE_DATE_EPOCH',
  'http_proxy', 'https_proxy', 'no_proxy', 'ftp_proxy', 'HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'FTP_PROXY',
] as const;

/**
 * The environment of a local build: the variables above and the `extra` ones the operator's
 * --builder-env names, with HOME in the build's own directory. Nothing else of the operator's:
 * not its KUBERNETES_* variables, its registry credentials ($REGISTRY_AUTH_FILE) or its tokens,
 * which a recipe could otherwise pass to its run steps (build_env_passthrough) and publish.
 */
export function builderEnvironment(operator: Readonly<NodeJS.ProcessEnv>, home: string, extra: readonly string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const name of [...builderVariables, ...extra]) {
    const value = operator[name];
    if (value !== undefined) env[name] = value;
  }
  env['HOME'] = home;
  return env;
}

/**
 * Runs `restack build --json` as a child process on the operator's machine (development, tests
 * without a kubelet). The command prints one JSON event a line; the last is build-done or error.
 * A build this process does not know is run again: its earlier process is gone with the operator.
 */
export class LocalExecutor implements Executor {
  /** argv before `build`'s arguments, e.g. [node, src/cli/main.ts, 'build']. */
  readonly #command: readonly string[];
  /** By ImageBuild UID, until the result is recorded. */
  readonly #runs = new Map<string, Run>();
  /** Builds started wait for a slot: many ImageBuilds at once must not start as many builders on one machine. */
  readonly #slots: Semaphore;
  /** Variables of the operator's environment the builds get beyond builderVariables. */
  readonly #environment: readonly string[];
  #context: ExecutorContext | undefined;
  #stopping = false;

  constructor(command: readonly string[], options: { maxParallel?: number; environment?: readonly string[] } = {}) {
    if (command.length === 0) throw new Error('the builder command is empty; give the restack build command line');
    this.#command = command;
    this.#slots = new Semaphore(options.maxParallel ?? availableParallelism());
    this.#environment = options.environment ?? [];
  }

  async start(context: ExecutorContext): Promise<void> {
    this.#context = context;
    this.#stopping = false;
  }

  /** Stops the builds under way: a restarted operator runs them again. */
  async stop(): Promise<void> {
    this.#stopping = true;
    const alive = (child: ChildProcess | undefined): child is ChildProcess => child !== undefined && child.exitCode === null && child.signalCode === null;
    const children = [...this.#runs.values()].flatMap((run) => (alive(run.child) ? [run.child] : []));
    await Promise.all(
      children.map((child) => new Promise((resolve) => {
        child.once('close', resolve);
        child.kill('SIGTERM');
      })),
    );
    this.#runs.clear();
  }

  async step(request: BuildRequest): Promise<BuildProgress> {
    const known = this.#runs.get(request.imageBuild.uid);
    if (known?.result !== undefined) return { state: 'done', result: known.result };
    if (known !== undefined) return { state: 'running' };
    const run: Run = {};
    this.#runs.set(request.imageBuild.uid, run);
    void this.#run(request, run).then((result) => {
      if (this.#stopping) return;
      run.result = result;
      this.#context?.onProgress(`${request.imageBuild.namespace}/${request.imageBuild.name}`);
    });
    return { state: 'started' };
  }

  /** A run still under way (its build was superseded, say) is stopped: its result would not be recorded. */
  async release(imageBuild: BuildRequest['imageBuild']): Promise<void> {
    const run = this.#runs.get(imageBuild.uid);
    this.#runs.delete(imageBuild.uid);
    if (run?.result === undefined) run?.child?.kill('SIGTERM');
  }

  async #run(request: BuildRequest, run: Run): Promise<BuildResult> {
    const release = await this.#slots.acquire();
    try {
      // Released (the build superseded) or stopped while waiting for a slot: nothing to run.
      if (this.#stopping || this.#runs.get(request.imageBuild.uid) !== run) return { ok: false, message: 'the build was stopped before it started' };
      return await this.#build(request, run);
    } finally {
      release();
    }
  }

  async #build(request: BuildRequest, run: Run): Promise<BuildResult> {
    const dir = await mkdtemp(join(tmpdir(), 'restack-build-'));
    try {
      // The build's storage lives here: the run containers' mapped root must be able to traverse it.
      await chmod(dir, 0o755);
      // The recipe alone in its directory: the one place its local paths may point to (--recipe-dir-only).
      await mkdir(join(dir, 'recipe'));
      const file = join(dir, 'recipe', 'stacker.yaml');
      await writeFile(file, request.recipe);
      await mkdir(join(dir, 'home'), { mode: 0o700 });
      const env = builderEnvironment(process.env, join(dir, 'home'), this.#environment);
      const kube = this.#context?.kube;
      if (kube === undefined) throw new Error('the local executor was not started');
      // Secrets are written for this run only and removed with its directory below.
      if (request.pushSecretName !== undefined) {
        env['REGISTRY_AUTH_FILE'] = join(dir, 'config.json');
        await writeFile(env['REGISTRY_AUTH_FILE'], await kube.dockerConfigJson(request.imageBuild.namespace, request.pushSecretName), { mode: 0o600 });
      }
      const signKey = join(dir, 'cosign.key');
      if (request.signingSecretName !== undefined) {
        const { key, password } = await kube.signingKey(request.imageBuild.namespace, request.signingSecretName);
        await writeFile(signKey, key, { mode: 0o600 });
        if (password !== undefined) env['COSIGN_PASSWORD'] = password;
      }
      // The Stackerfile's record key, for this run only: the build signs its layers' change records with it.
      const recordKey = join(dir, 'layer-record.key');
      if (request.layerRecordKey !== undefined) await writeFile(recordKey, request.layerRecordKey, { mode: 0o600 });
      const args = [
        ...this.#command.slice(1),
        '-f', file,
        '--recipe-dir-only',
        '--push', `docker://${request.registry}`,
        ...request.tags.flatMap((tag) => ['--tag', tag]),
        ...Object.entries(request.substitutions).flatMap(([key, value]) => ['--substitute', `${key}=${value}`]),
        ...(request.insecure ? ['--insecure'] : []),
        ...(request.signingSecretName === undefined ? [] : ['--sign-key', signKey]),
        ...(request.layerRecordKey === undefined ? ['--no-layer-record-key'] : ['--layer-record-key', recordKey]),
        ...(request.builder.cacheRepository === undefined ? [] : ['--cache-repo', `docker://${request.builder.cacheRepository}`]),
        '--json',
      ];
      return await this.#spawn(this.#command[0] as string, args, dir, env, request, run);
    } catch (error) {
      return { ok: false, message: error instanceof Error ? error.message : String(error) };
    } finally {
      await this.#removeDir(dir, run.keptRootfs);
    }
  }

  /** Best effort: a failed removal must not lose the build's result. */
  async #removeDir(dir: string, keptRootfs: string | undefined): Promise<void> {
    try {
      // A failed run's rootfs stays mounted for inspection; nobody inspects it here.
      if (keptRootfs?.startsWith(`${dir}/`)) await execa('umount', [keptRootfs]);
      await rm(dir, { recursive: true, force: true });
    } catch (error) {
      this.#context?.logger.warn({ dir, err: error }, 'cannot remove the directory of a local build');
    }
  }

  #spawn(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv, request: BuildRequest, run: Run): Promise<BuildResult> {
    return new Promise((resolve) => {
      const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
      run.child = child;
      const tail: string[] = [];
      const remember = (line: string) => {
        tail.push(line);
        if (tail.length > keptLines) tail.shift();
      };
      let last: BuildEvent | undefined;
      let step: string | undefined;
      createInterface({ input: child.stdout }).on('line', (line) => {
        try {
          last = JSON.parse(line) as BuildEvent;
          if (last.event === 'step') step = last.step;
          if (last.event === 'error' && last.keptRootfs !== undefined) run.keptRootfs = resolvePath(cwd, last.keptRootfs);
          if (last.event !== 'build-done') remember(line);
        } catch {
          remember(line);
        }
      });
      createInterface({ input: child.stderr }).on('line', remember);
      child.once('error', (error) => resolve({ ok: false, message: `cannot run the builder ${command}: ${error.message}` }));
      child.once('close', (code, signal) => {
        try {
          if (code === 0 && last?.event === 'build-done') resolve(buildResultOf({ v: 1, outputs: resultOutputs(last.outputs) }, request));
          else if (last?.event === 'error') resolve(buildResultOf(errorResult(last, step), request));
          else resolve({ ok: false, message: [`the builder exited with ${signal ?? `code ${code}`} without a build-done event`, ...tail].join('\n') });
        } catch (error) {
          resolve({ ok: false, message: `the builder ${command}'s last event does not follow restack build --json: ${error instanceof Error ? error.message : String(error)}` });
        }
      });
    });
  }
}
