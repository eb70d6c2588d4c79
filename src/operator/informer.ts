import { makeInformer, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Backoff, type BackoffPolicy } from './backoff.ts';

/** From 1 s up to 30 s between restarts while the API server does not answer. */
export const defaultRestartBackoff: BackoffPolicy = { initialMs: 1000, maxMs: 30_000 };

/** `namespace/name`, the key of the caches and queues. */
export function objectKey(object: KubernetesObject): string {
  return `${object.metadata?.namespace ?? ''}/${object.metadata?.name ?? ''}`;
}

export function splitKey(key: string): { namespace: string; name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * Whether `object` is an older version than `known`. Resource versions are opaque to clients, but
 * the API server's are etcd revisions: integers that grow, which client-go's mutation cache relies
 * on too. Only `remember` can put a version in the cache before the watch delivers the ones before it.
 */
function isOlder(object: KubernetesObject, known: KubernetesObject): boolean {
  const version = object.metadata?.resourceVersion;
  const knownVersion = known.metadata?.resourceVersion;
  if (version === undefined || knownVersion === undefined || !/^\d+$/.test(version) || !/^\d+$/.test(knownVersion)) return false;
  return BigInt(version) < BigInt(knownVersion);
}

export interface InformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** The watch path, e.g. /apis/restack.dev/v1alpha1/namespaces/ns/stackerfiles. */
  path: string;
  list: () => Promise<KubernetesListObject<T>>;
  /** Watch only objects with these labels (`list` must select the same). */
  labelSelector?: string;
  /** Called with the object on every real change (a new resourceVersion) and on deletion. */
  onChange: (object: T, deleted: boolean) => void;
  logger: Logger;
  /**
   * Waits before restarting a list or watch that failed with something other than 410 Gone:
   * doubling with jitter while the API server stays away, back to the start after a list succeeds.
   */
  restartBackoff?: BackoffPolicy;
  /** A secondary key (such as the owner's uid), so `indexed` finds an object's peers without scanning the cache. */
  indexBy?: (object: T) => string | undefined;
}

/**
 * A cache of one kind, kept by client-node's ListWatch. The library relists after 410 Gone by
 * itself, but stops on any other error: this restarts it, keeping its objects, so a reconnect
 * only reports objects whose resourceVersion moved.
 */
export class Informer<T extends KubernetesObject> {
  readonly #options: InformerOptions<T>;
  readonly #cache = new Map<string, T>();
  readonly #index = new Map<string, Set<string>>();
  readonly #informer;
  #synced = false;
  #markSynced: () => void = () => {};
  readonly #syncedOnce = new Promise<void>((resolve) => {
    this.#markSynced = () => {
      this.#synced = true;
      resolve();
    };
  });
  #stopped = false;
  #restart: NodeJS.Timeout | undefined;
  readonly #backoff: Backoff;

  constructor(options: InformerOptions<T>) {
    this.#options = options;
    this.#backoff = new Backoff(options.restartBackoff ?? defaultRestartBackoff);
    const list = async () => {
      const listed = await options.list();
      this.#backoff.reset();
      this.#markSynced();
      return listed;
    };
    this.#informer = makeInformer<T>(options.kubeConfig, options.path, list, options.labelSelector);
    const seen = (object: T) => this.#seen(object);
    this.#informer.on('add', seen);
    this.#informer.on('update', seen);
    this.#informer.on('delete', (object) => {
      const key = objectKey(object);
      this.#unindex(key);
      this.#cache.delete(key);
      options.onChange(object, true);
    });
    this.#informer.on('error', (error: unknown) => this.#failed(error));
  }

  get synced(): boolean {
    return this.#synced;
  }

  /** Resolves once the first list has filled the cache (a failed list is retried by #failed). */
  async start(): Promise<void> {
    this.#stopped = false;
    await this.#informer.start().catch((error: unknown) => this.#failed(error));
    await this.#syncedOnce;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#restart);
    await this.#informer.stop();
  }

  get(key: string): T | undefined {
    return this.#cache.get(key);
  }

  list(namespace?: string): T[] {
    return [...this.#cache.values()].filter((object) => namespace === undefined || object.metadata?.namespace === namespace);
  }

  /**
   * An object this process just wrote, as the API server returned it: cached at once, so the
   * reconciles that follow do not act on the version before the write and fail with 409
   * Conflict; the watch's echo of it then changes nothing. `notify: false` when the writer is the
   * only one to react and has done so (a controller's own status write).
   */
  remember(object: T, { notify = true }: { notify?: boolean } = {}): void {
    this.#seen(object, notify);
  }

  /** The cached objects whose `indexBy` key is `indexKey`. */
  indexed(indexKey: string): T[] {
    return [...(this.#index.get(indexKey) ?? [])].flatMap((key) => this.#cache.get(key) ?? []);
  }

  #seen(object: T, notify = true): void {
    // Nothing here reads managedFields, and they are often the larger part of an object with a big
    // status: dropped from the cached object (which client-node's cache shares), as
    // controller-runtime's TransformStripManagedFields does.
    delete object.metadata?.managedFields;
    const key = objectKey(object);
    const known = this.#cache.get(key);
    if (known !== undefined && isOlder(object, known)) return;
    this.#unindex(key);
    this.#cache.set(key, object);
    const indexKey = this.#options.indexBy?.(object);
    if (indexKey !== undefined) this.#index.set(indexKey, (this.#index.get(indexKey) ?? new Set()).add(key));
    const version = object.metadata?.resourceVersion;
    if (!notify || (known !== undefined && version !== undefined && known.metadata?.resourceVersion === version)) return;
    this.#options.onChange(object, false);
  }

  #unindex(key: string): void {
    const known = this.#cache.get(key);
    const indexKey = known === undefined ? undefined : this.#options.indexBy?.(known);
    if (indexKey === undefined) return;
    const peers = this.#index.get(indexKey);
    peers?.delete(key);
    if (peers?.size === 0) this.#index.delete(indexKey);
  }

  #failed(error: unknown): void {
    if (this.#stopped) return;
    const retryInMs = this.#backoff.next();
    this.#options.logger.warn({ path: this.#options.path, err: error, failures: this.#backoff.failures, retryInMs }, 'informer: list or watch failed; restarting it');
    clearTimeout(this.#restart);
    this.#restart = setTimeout(() => {
      if (this.#stopped) return;
      // start() resolves once the watch is connected again (from the last resourceVersion, without
      // a list); errors on the way come to #failed, so none counted meanwhile means it worked.
      const failures = this.#backoff.failures;
      this.#informer.start().then(
        () => {
          if (this.#backoff.failures === failures) this.#backoff.reset();
        },
        (failure: unknown) => this.#failed(failure),
      );
    }, retryInMs);
  }
}
