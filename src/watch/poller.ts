import { OciError, type OciErrorCode } from '../oci/errors.ts';
import { openStore, type OpenStoreOptions } from '../oci/open.ts';
import type { ImageReference } from '../oci/reference.ts';
import type { CredentialProvider } from '../oci/registry/credential-provider.ts';
import type { Store } from '../oci/store.ts';
import type { IndexedInput, InputIndex } from './input-index.ts';
import { RateLimits } from './rate-limit.ts';

/** What one check of an input found. */
export type CheckResult = { digest: string } | { error: string; retryable: boolean };

/** Whether a registry answered the latest check of any of its inputs. */
export type RegistryHealth = { reachable: true } | { reachable: false; message: string; since: Date };

/** Called when an input's digest differs from the last one seen; `previous` is undefined on the first sighting. */
export type ChangeListener = (key: string, previous: string | undefined, current: string, owners: string[]) => Promise<void> | void;

export interface RetryPolicy {
  /** Extra checks after a retryable failure, before the next scheduled one. */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export const defaultRetryPolicy: RetryPolicy = { attempts: 3, baseDelayMs: 5_000, maxDelayMs: 60_000 };

/**
 * Re-checks when a push notification named a digest the tag does not show yet: the distribution
 * registry sends the event before it moves the tag.
 */
export interface PushLagPolicy {
  attempts: number;
  delayMs: number;
}

export const defaultPushLag: PushLagPolicy = { attempts: 5, delayMs: 200 };

export interface PollerOptions {
  index: InputIndex;
  onChange?: ChangeListener;
  /** Errors of onChange and of background retries, which have no caller to throw to. */
  onError?: (error: unknown) => void;
  /** How registry stores are opened (credentials, the store's own retries); stores are shared per host. */
  store?: OpenStoreOptions;
  /** The credentials of inputs indexed with `credentials` (IndexedInput); without it, such inputs use `store`'s. */
  credentialsFor?: (credentials: string) => CredentialProvider;
  /** Registry hosts spoken to over plain http (loopback hosts already are). */
  insecureRegistries?: readonly string[];
  limits?: RateLimits;
  /** Who an input's check is for (the operator: its owners' namespace), so each takes its turn at a busy registry. */
  tenantOf?: (key: string) => string;
  retry?: RetryPolicy;
  pushLag?: PushLagPolicy;
  now?: () => Date;
}

/** Failures that may pass on their own: the registry is down, overloaded or rate limiting. */
const retryableCodes = new Set<OciErrorCode>(['UNREACHABLE', 'REGISTRY_ERROR', 'TOOMANYREQUESTS']);

function explain(error: unknown): { message: string; retryable: boolean } {
  if (error instanceof OciError) {
    return { message: error.hint === undefined ? error.message : `${error.message}; ${error.hint}`, retryable: retryableCodes.has(error.code) };
  }
  return { message: error instanceof Error ? error.message : String(error), retryable: false };
}

/** The registry an input lives in, as health is reported: the host, or `oci:DIR` for a layout. */
export function registryOf(ref: ImageReference): string {
  return ref.transport === 'oci' ? `oci:${ref.dir}` : ref.registry;
}

/**
 * Checks inputs of the index for new digests: each unique input once (HEAD-first through the
 * Store), within each registry's rate limit. A failed check is an error, never a change, so a
 * registry that is down causes no builds; it is reported by `health()` and retried with backoff.
 */
export class Poller {
  readonly #options: PollerOptions;
  readonly #limits: RateLimits;
  readonly #retry: RetryPolicy;
  readonly #now: () => Date;
  readonly #inFlight = new Map<string, Promise<CheckResult>>();
  readonly #health = new Map<string, RegistryHealth>();
  readonly #failures = new Map<string, number>();
  /** The error of each key's latest check, while it fails. */
  readonly #lastErrors = new Map<string, string>();
  readonly #recheckTimers = new Map<string, NodeJS.Timeout>();
  readonly #stores = new Map<string, Store>();
  /** Digests a notification announced for a key and a check has not seen yet, with the re-checks made. */
  readonly #announced = new Map<string, { digest: string; rechecks: number }>();
  #stopped = false;

  constructor(options: PollerOptions) {
    this.#options = options;
    this.#limits = options.limits ?? new RateLimits();
    this.#retry = options.retry ?? defaultRetryPolicy;
    this.#now = options.now ?? (() => new Date());
  }

  /** One tick of a schedule: the unique inputs of the owners on it. */
  async poll(schedule: string): Promise<Map<string, CheckResult>> {
    return this.check(this.#options.index.due(schedule).map((input) => input.key));
  }

  /**
   * Checks these inputs now (a webhook push, a cascade); inputs the index does not watch are
   * skipped. `announced` holds the digests a push notification named: while the tag does not
   * show one yet, the input is checked again shortly (PushLagPolicy).
   */
  async triggerNow(keys: Iterable<string>, announced: ReadonlyMap<string, string> = new Map()): Promise<Map<string, CheckResult>> {
    for (const [key, digest] of announced) if (this.#options.index.has(key)) this.#announced.set(key, { digest, rechecks: 0 });
    return this.check(keys);
  }

  /**
   * Checks each watched key once; a key whose check is in flight shares it rather than asking
   * again. A check asked for here starts a fresh round of retries.
   */
  async check(keys: Iterable<string>): Promise<Map<string, CheckResult>> {
    const checks: Array<Promise<[string, CheckResult]>> = [];
    for (const key of new Set(keys)) {
      const pending = this.#start(key, 'asked');
      if (pending !== undefined) checks.push(pending.then((result) => [key, result]));
    }
    return new Map(await Promise.all(checks));
  }

  #start(key: string, why: 'asked' | 'retry'): Promise<CheckResult> | undefined {
    const input = this.#options.index.get(key);
    if (input === undefined) return undefined;
    let pending = this.#inFlight.get(key);
    if (pending === undefined) {
      this.#cancelRecheck(key);
      if (why === 'asked') this.#failures.delete(key);
      pending = this.#checkOne(input).finally(() => this.#inFlight.delete(key));
      this.#inFlight.set(key, pending);
    }
    return pending;
  }

  /** Why the latest check of this key failed; undefined once a check succeeded. */
  lastError(key: string): string | undefined {
    return this.#lastErrors.get(key);
  }

  /** Each registry checked so far, reachable or not (with since when it has not answered). */
  health(): ReadonlyMap<string, RegistryHealth> {
    return this.#health;
  }

  /** Cancels re-checks waiting for their turn; checks in flight finish. */
  stop(): void {
    this.#stopped = true;
    this.#announced.clear();
    for (const key of [...this.#recheckTimers.keys()]) this.#cancelRecheck(key);
  }

  async #checkOne(input: IndexedInput): Promise<CheckResult> {
    const registry = registryOf(input.ref);
    try {
      const digest = await this.#resolve(input, registry);
      this.#health.set(registry, { reachable: true });
      this.#failures.delete(input.key);
      this.#lastErrors.delete(input.key);
      await this.#notify(input.key, digest);
      this.#awaitAnnounced(input.key, digest);
      return { digest };
    } catch (error) {
      const { message, retryable } = explain(error);
      this.#lastErrors.set(input.key, message);
      if (retryable) {
        const health = this.#health.get(registry);
        this.#health.set(registry, { reachable: false, message, since: health?.reachable === false ? health.since : this.#now() });
        this.#scheduleRetry(input.key);
      } else {
        // The registry answered: the failure is about this input (a missing tag, no permission).
        this.#health.set(registry, { reachable: true });
      }
      return { error: message, retryable };
    }
  }

  async #resolve(input: IndexedInput, registry: string): Promise<string> {
    const { ref, credentials } = input;
    const credentialsFor = this.#options.credentialsFor;
    const opened = openStore(ref, {
      ...this.#options.store,
      ...(this.#options.insecureRegistries?.includes(registry) ? { insecure: true } : {}),
      ...(credentials === undefined || credentialsFor === undefined ? {} : { credentials: credentialsFor(credentials) }),
    });
    // Kept per registry and credentials even when openStore does not share it (a custom credential provider), so the auth handshake is done once.
    const storeKey = `${registry}\0${credentials ?? ''}`;
    const store = this.#stores.get(storeKey) ?? opened.store;
    if (ref.transport === 'docker') this.#stores.set(storeKey, store);
    const resolve = () => store.resolve(opened.repository, opened.reference);
    const descriptor = ref.transport === 'oci' ? await resolve() : await this.#limits.for(registry).run(resolve, this.#options.tenantOf?.(input.key) ?? '');
    return descriptor.digest;
  }

  async #notify(key: string, digest: string): Promise<void> {
    const { changed, previous } = this.#options.index.record(key, digest);
    if (!changed || this.#options.onChange === undefined) return;
    try {
      await this.#options.onChange(key, previous, digest, this.#options.index.ownersOf(key));
    } catch (error) {
      this.#options.onError?.(error);
    }
  }

  #awaitAnnounced(key: string, seen: string): void {
    const announced = this.#announced.get(key);
    if (announced === undefined) return;
    const lag = this.#options.pushLag ?? defaultPushLag;
    if (announced.digest === seen || announced.rechecks >= lag.attempts || this.#stopped) {
      this.#announced.delete(key);
      return;
    }
    announced.rechecks++;
    this.#later(key, lag.delayMs * announced.rechecks);
  }

  #scheduleRetry(key: string): void {
    const failures = (this.#failures.get(key) ?? 0) + 1;
    this.#failures.set(key, failures);
    if (this.#stopped || failures > this.#retry.attempts) return;
    this.#later(key, Math.min(this.#retry.maxDelayMs, this.#retry.baseDelayMs * 2 ** (failures - 1)));
  }

  #later(key: string, wait: number): void {
    this.#cancelRecheck(key);
    const timer = setTimeout(() => {
      this.#recheckTimers.delete(key);
      this.#start(key, 'retry')?.catch((error: unknown) => this.#options.onError?.(error));
    }, wait);
    timer.unref();
    this.#recheckTimers.set(key, timer);
  }

  #cancelRecheck(key: string): void {
    const timer = this.#recheckTimers.get(key);
    if (timer === undefined) return;
    clearTimeout(timer);
    this.#recheckTimers.delete(key);
  }
}
