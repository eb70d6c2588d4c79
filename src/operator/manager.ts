import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { hostname } from 'node:os';
import type { KubeConfig, KubernetesListObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { LayerChangesCache } from '../engine/layer-changes.ts';
import type { Executor } from './executor.ts';
import { ImageBuildController } from './imagebuild-controller.ts';
import { Informer, objectKey, splitKey } from './informer.ts';
import { Kube, type ImageBuild, type Kind, type Stackerfile } from './kube.ts';
import { LeaderElector } from './leader.ts';
import { LeaderPodLabel } from './leader-pod-label.ts';
import { OperatorMetrics } from './metrics.ts';
import { WorkQueue, type Handler } from './queue.ts';
import { RecipeConfigMaps } from './recipe-configmaps.ts';
import { controllerUid, StackerfileController } from './stackerfile-controller.ts';
import type { RetryPolicy } from './updates.ts';
import { WatchService, type WatchServiceOptions } from './watch-service.ts';

export interface ManagerOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  executor: Executor;
  /** Only this namespace; all when undefined. */
  namespace?: string;
  /** host:port or :port; port 0 picks a free one (see address()). */
  metricsBindAddress: string;
  /**
   * `pod`: this replica's pod in `namespace`, labelled restack.dev/leader=true while it leads (a
   * Service of the leader alone, such as the registry webhook's, selects it).
   */
  leaderElection?: { namespace: string; name: string; identity?: string; leaseDurationMs: number; renewEveryMs: number; pod?: string };
  missingRecipeRetryMs?: number;
  /** File entries of layer listings kept in memory (LayerChangesCache); default defaultLayerCacheEntries. */
  layerCacheEntries?: number;
  /** The master layer record key (--layer-record-key-file): each Stackerfile's builds and swaps use a key derived from it. */
  layerRecordKey?: Uint8Array;
  /** How failed builds that may pass on their own are tried again (default: 5 attempts, 30 s doubling to 10 min). */
  buildRetry?: RetryPolicy;
  retryBaseDelayMs?: number;
  /** Reconciles of each kind (and the swaps they run) at once; default defaultReconcileWorkers. */
  reconcileWorkers?: number;
  /** Keep published images current: watch their inputs, swap or rebuild (docs/updates.md). Off when undefined. */
  updates?: Omit<WatchServiceOptions, 'logger' | 'requeue' | 'credentialsFor'> & { defaultSchedule?: string };
}

/**
 * Reconciles and swaps mostly wait on the API server and the registry: a fan-out of 1,000 swaps
 * left 2 workers idle half the time (bench/operator.ts, operator-updates).
 */
export const defaultReconcileWorkers = 8;

/** Wires the caches, queues, controllers, leader election and the health and metrics server. */
export class Manager {
  readonly metrics = new OperatorMetrics();
  readonly #o: ManagerOptions;
  readonly #kube: Kube;
  readonly #stackerfiles: Informer<Stackerfile>;
  readonly #imageBuilds: Informer<ImageBuild>;
  readonly #queues: Record<Kind, WorkQueue>;
  readonly #elector: LeaderElector | undefined;
  readonly #leaderLabel: LeaderPodLabel | undefined;
  readonly #watch: WatchService | undefined;
  readonly #recipes: RecipeConfigMaps;
  readonly #layerChanges: LayerChangesCache;
  readonly #imageBuildController: ImageBuildController;
  #server: Server | undefined;
  #controllersRunning = false;

  constructor(options: ManagerOptions) {
    this.#o = options;
    const { kubeConfig, logger, namespace } = options;
    this.#kube = new Kube(kubeConfig);
    const informer = <T extends Stackerfile | ImageBuild>(kind: Kind, onChange: (object: T) => void, indexBy?: (object: T) => string | undefined) =>
      new Informer<T>({
        kubeConfig,
        logger,
        path: this.#kube.listPath(kind, namespace),
        list: async () => (await this.#kube.list(kind, namespace)) as KubernetesListObject<T>,
        onChange,
        ...(indexBy === undefined ? {} : { indexBy }),
      });
    this.#stackerfiles = informer<Stackerfile>('Stackerfile', (sf) => this.#queues.Stackerfile.add(objectKey(sf)));
    this.#imageBuilds = informer<ImageBuild>('ImageBuild', (build) => {
      this.#queues.ImageBuild.add(objectKey(build));
      this.#queues.Stackerfile.add(`${build.metadata?.namespace}/${build.spec.stackerfileRef.name}`);
    }, controllerUid);
    this.#watch =
      options.updates === undefined
        ? undefined
        : new WatchService({
            ...options.updates,
            logger,
            requeue: (owners) => owners.forEach((owner) => this.#queues.Stackerfile.add(owner)),
            credentialsFor: (secret) => {
              const { namespace: secretNamespace, name } = splitKey(secret);
              return this.#kube.secretCredentials(secretNamespace, name);
            },
          });
    this.#recipes = new RecipeConfigMaps({ kubeConfig, logger, requeue: (keys) => keys.forEach((key) => this.#queues.Stackerfile.add(key)) });
    const stackerfileController = new StackerfileController({
      kube: this.#kube,
      stackerfiles: this.#stackerfiles,
      imageBuilds: this.#imageBuilds,
      logger,
      recipes: this.#recipes,
      ...(this.#watch === undefined ? {} : { inputs: this.#watch }),
      ...(options.updates?.defaultSchedule === undefined ? {} : { defaultSchedule: options.updates.defaultSchedule }),
      ...(options.missingRecipeRetryMs === undefined ? {} : { missingRecipeRetryMs: options.missingRecipeRetryMs }),
      ...(options.executor.refuse === undefined ? {} : { refuseBuilder: (builder) => options.executor.refuse?.(builder) }),
      ...(options.buildRetry === undefined ? {} : { buildRetry: options.buildRetry }),
    });
    this.#layerChanges = new LayerChangesCache(undefined, options.layerCacheEntries === undefined ? {} : { maxEntries: options.layerCacheEntries });
    const imageBuildController = new ImageBuildController({
      kube: this.#kube,
      stackerfiles: this.#stackerfiles,
      imageBuilds: this.#imageBuilds,
      executor: options.executor,
      layerChanges: this.#layerChanges,
      ...(options.layerRecordKey === undefined ? {} : { layerRecordKey: options.layerRecordKey }),
      logger,
      onFinished: (result) => this.metrics.builds.inc({ result }),
    });
    this.#imageBuildController = imageBuildController;
    this.#queues = {
      Stackerfile: this.#queue('Stackerfile', (key) => stackerfileController.reconcile(key)),
      ImageBuild: this.#queue('ImageBuild', (key) => imageBuildController.reconcile(key)),
    };
    const election = options.leaderElection;
    this.#leaderLabel =
      election?.pod === undefined ? undefined : new LeaderPodLabel({ kube: this.#kube, namespace: election.namespace, pod: election.pod, logger });
    this.#elector =
      election === undefined
        ? undefined
        : new LeaderElector({
            kubeConfig,
            logger,
            namespace: election.namespace,
            name: election.name,
            identity: election.identity ?? `${hostname()}_${process.pid}_${Math.random().toString(36).slice(2, 8)}`,
            leaseDurationMs: election.leaseDurationMs,
            renewEveryMs: election.renewEveryMs,
            onStartedLeading: () => {
              this.#startControllers();
              void this.#leaderLabel?.set(true);
            },
            onStoppedLeading: () => {
              void this.#leaderLabel?.set(false);
              void this.#stopControllers();
            },
          });
  }

  get leading(): boolean {
    return this.#controllersRunning;
  }

  get ready(): boolean {
    return this.#stackerfiles.synced && this.#imageBuilds.synced && (this.#elector?.healthy ?? true);
  }

  /** The address the health and metrics server listens on. */
  address(): AddressInfo {
    return this.#server?.address() as AddressInfo;
  }

  async start(): Promise<void> {
    await this.#listen();
    const { kubeConfig, namespace, logger } = this.#o;
    await Promise.all([
      this.#stackerfiles.start(),
      this.#imageBuilds.start(),
      this.#o.executor.start({ kube: this.#kube, kubeConfig, logger, ...(namespace === undefined ? {} : { namespace }), onProgress: (key) => this.#queues.ImageBuild.add(key) }),
    ]);
    this.#o.logger.info({ namespace: this.#o.namespace ?? '(all)' }, 'caches synced');
    await this.#leaderLabel?.clear();
    if (this.#elector === undefined) this.#startControllers();
    else this.#elector.start();
  }

  async stop(): Promise<void> {
    await this.#elector?.stop();
    await this.#leaderLabel?.set(false);
    this.#leaderLabel?.stop();
    await this.#stopControllers();
    await Promise.all([this.#stackerfiles.stop(), this.#imageBuilds.stop(), this.#o.executor.stop()]);
    await new Promise<void>((resolve) => (this.#server === undefined ? resolve() : this.#server.close(() => resolve())));
  }

  #queue(kind: Kind, handler: Handler): WorkQueue {
    return new WorkQueue(handler, {
      concurrency: this.#o.reconcileWorkers ?? defaultReconcileWorkers,
      ...(this.#o.retryBaseDelayMs === undefined ? {} : { baseDelayMs: this.#o.retryBaseDelayMs }),
      onDone: (key, outcome) => {
        this.metrics.reconciles.inc({ kind, result: outcome.ok ? 'success' : 'error' });
        this.metrics.reconcileSeconds.observe({ kind }, outcome.seconds);
        if (!outcome.ok) this.#o.logger.warn({ kind, key, err: outcome.error }, 'reconcile failed; retrying with backoff');
      },
    });
  }

  #startControllers(): void {
    if (this.#controllersRunning) return;
    this.#controllersRunning = true;
    this.metrics.leader.set(1);
    this.#o.logger.info('starting controllers');
    for (const queue of Object.values(this.#queues)) queue.start();
    this.#watch?.start().catch((error: unknown) => this.#o.logger.error({ err: error }, 'cannot receive registry notifications'));
    for (const sf of this.#stackerfiles.list()) this.#queues.Stackerfile.add(objectKey(sf));
    for (const build of this.#imageBuilds.list()) this.#queues.ImageBuild.add(objectKey(build));
  }

  async #stopControllers(): Promise<void> {
    if (!this.#controllersRunning) return;
    this.#controllersRunning = false;
    this.metrics.leader.set(0);
    this.#o.logger.info('stopping controllers');
    await this.#watch?.stop();
    await Promise.all(Object.values(this.#queues).map((queue) => queue.stop()));
    // Started again by the reconciles of the next term as leader.
    this.#recipes.stop();
  }

  #listen(): Promise<void> {
    const colon = this.#o.metricsBindAddress.lastIndexOf(':');
    const host = this.#o.metricsBindAddress.slice(0, colon);
    const port = Number(this.#o.metricsBindAddress.slice(colon + 1));
    if (colon < 0 || !Number.isInteger(port)) {
      throw new Error(`--metrics-bind-address ${this.#o.metricsBindAddress}: give HOST:PORT or :PORT, e.g. :8080`);
    }
    this.#server = createServer((request, response) => {
      void (async () => {
        if (request.url === '/healthz') {
          response.writeHead(200).end('ok');
        } else if (request.url === '/readyz') {
          response.writeHead(this.ready ? 200 : 503).end(this.ready ? 'ok' : 'caches not synced or the API server unreachable');
        } else if (request.url === '/metrics') {
          this.metrics.queueDepth.set({ kind: 'Stackerfile' }, this.#queues.Stackerfile.depth);
          this.metrics.queueDepth.set({ kind: 'ImageBuild' }, this.#queues.ImageBuild.depth);
          const caches = { ...this.#imageBuildController.cacheSizes(), 'layer-listings': this.#layerChanges.size.layers, 'layer-listing-entries': this.#layerChanges.size.entries };
          for (const [cache, entries] of Object.entries(caches)) this.metrics.cacheEntries.set({ cache }, entries);
          response.writeHead(200, { 'Content-Type': this.metrics.registry.contentType }).end(await this.metrics.registry.metrics());
        } else {
          response.writeHead(404).end('not found: try /healthz, /readyz or /metrics');
        }
      })();
    });
    return new Promise((resolve, reject) => {
      this.#server?.once('error', reject);
      this.#server?.listen(port, host === '' ? undefined : host, () => resolve());
    });
  }
}
