import { Watch, type KubeConfig, type V1ConfigMap } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Backoff, type BackoffPolicy } from './backoff.ts';
import { defaultRestartBackoff, splitKey } from './informer.ts';

export interface RecipeConfigMapsOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Re-queues these Stackerfiles (namespace/name): the ConfigMap their recipe comes from changed. */
  requeue: (stackerfiles: string[]) => void;
  restartBackoff?: BackoffPolicy;
}

interface NamespaceWatch {
  /** Stackerfiles of this namespace per ConfigMap name they read their recipe from. */
  readers: Map<string, Set<string>>;
  resourceVersion: string;
  request?: AbortController;
  timer?: NodeJS.Timeout;
  backoff: Backoff;
  stopped: boolean;
}

/**
 * Watches the ConfigMaps that Stackerfiles read their recipe from (spec.recipeFrom), so an edit of
 * the recipe there is acted on as an edit of spec.recipe is. One watch per namespace that has such
 * a Stackerfile, started with the first and stopped with the last; nothing is cached (the recipe is
 * read when the Stackerfile is reconciled), and only changes of the ConfigMaps named re-queue.
 * A watch that ends resumes from its last resourceVersion, after a backoff that grows while it fails.
 */
export class RecipeConfigMaps {
  readonly #o: RecipeConfigMapsOptions;
  /** Per Stackerfile (namespace/name), the ConfigMap name it reads. */
  readonly #refs = new Map<string, string>();
  readonly #namespaces = new Map<string, NamespaceWatch>();

  constructor(options: RecipeConfigMapsOptions) {
    this.#o = options;
  }

  /** Records which ConfigMap a Stackerfile reads its recipe from (none: undefined). */
  track(stackerfile: string, configMap: string | undefined): void {
    const before = this.#refs.get(stackerfile);
    if (before === configMap) return;
    const { namespace } = splitKey(stackerfile);
    if (before !== undefined) {
      this.#refs.delete(stackerfile);
      const watch = this.#namespaces.get(namespace);
      const readers = watch?.readers.get(before);
      readers?.delete(stackerfile);
      if (readers?.size === 0) watch?.readers.delete(before);
      if (watch !== undefined && watch.readers.size === 0) this.#stop(namespace, watch);
    }
    if (configMap === undefined) return;
    this.#refs.set(stackerfile, configMap);
    let watch = this.#namespaces.get(namespace);
    if (watch === undefined) {
      watch = { readers: new Map(), resourceVersion: '', backoff: new Backoff(this.#o.restartBackoff ?? defaultRestartBackoff), stopped: false };
      this.#namespaces.set(namespace, watch);
      void this.#connect(namespace, watch);
    }
    watch.readers.set(configMap, (watch.readers.get(configMap) ?? new Set()).add(stackerfile));
  }

  /** The namespaces watched now. */
  get namespaces(): string[] {
    return [...this.#namespaces.keys()];
  }

  stop(): void {
    for (const [namespace, watch] of this.#namespaces) this.#stop(namespace, watch);
    this.#refs.clear();
  }

  #stop(namespace: string, watch: NamespaceWatch): void {
    watch.stopped = true;
    clearTimeout(watch.timer);
    watch.request?.abort();
    this.#namespaces.delete(namespace);
  }

  async #connect(namespace: string, watch: NamespaceWatch): Promise<void> {
    // Without a resourceVersion the API server first sends every ConfigMap as ADDED: the readers
    // of those named are re-queued once, which is how a restart catches up.
    const query = { allowWatchBookmarks: true, ...(watch.resourceVersion === '' ? {} : { resourceVersion: watch.resourceVersion }) };
    watch.request = await new Watch(this.#o.kubeConfig).watch(
      `/api/v1/namespaces/${namespace}/configmaps`,
      query,
      (type: string, object: V1ConfigMap & { code?: number }) => {
        if (type === 'ERROR') {
          // 410 Gone: the resourceVersion is too old; start over from the current state.
          if (object.code === 410) watch.resourceVersion = '';
          return;
        }
        watch.resourceVersion = object.metadata?.resourceVersion ?? watch.resourceVersion;
        watch.backoff.reset();
        if (type === 'BOOKMARK') return;
        const readers = watch.readers.get(object.metadata?.name ?? '');
        if (readers !== undefined) this.#o.requeue([...readers]);
      },
      (error: unknown) => {
        if (watch.stopped) return;
        // Every end counts: events reset the backoff, so a watch that worked for a while comes back
        // at once, and one the API server ends straight away (or refuses) backs off.
        const retryInMs = watch.backoff.next();
        if (error !== null && error !== undefined) this.#o.logger.warn({ namespace, err: error, failures: watch.backoff.failures, retryInMs }, 'recipe ConfigMap watch failed; restarting it');
        watch.timer = setTimeout(() => void this.#connect(namespace, watch), retryInMs);
      },
    );
    if (watch.stopped) watch.request.abort();
  }
}
