import type { Logger } from 'pino';
import type { CredentialProvider } from '../oci/registry/credential-provider.ts';
import { CascadeGraph } from '../watch/graph.ts';
import { InputIndex, inputKey } from '../watch/input-index.ts';
import { Poller, registryOf, type CheckResult } from '../watch/poller.ts';
import { RateLimits, type RateLimit } from '../watch/rate-limit.ts';
import { Scheduler, validateSchedule } from '../watch/scheduler.ts';
import { startWebhook, type WebhookReceiver, type WebhookTls } from '../watch/webhook.ts';
import { splitKey } from './informer.ts';
import type { InputProblems, InputWatcher, WatchedStackerfile } from './input-watcher.ts';

export interface WatchServiceOptions {
  logger: Logger;
  /** Re-queues Stackerfiles (namespace/name) whose inputs changed or whose input problems did. */
  requeue: (owners: readonly string[]) => void;
  /** Widest delay after a schedule's tick, so many schedules do not fire at once (default 30 s). */
  jitterWindowMs?: number;
  /** Registry hosts spoken to over plain http (loopback ones already are). */
  insecureRegistries?: readonly string[];
  /** Receive the registry's push notifications here (https with `tls`). */
  webhook?: { host: string; port: number; secret: string; tls?: WebhookTls };
  /** The shortest time a schedule may leave between input checks (spec.updates.schedule); none when undefined. */
  minScheduleIntervalMs?: number;
  /** How hard input checks may ask each registry (default: defaultRateLimit). */
  rateLimit?: RateLimit;
  /** The registry credentials a WatchedStackerfile's `credentials` names; without it, every check uses the process's own. */
  credentialsFor?: (credentials: string) => CredentialProvider;
}

function describe(problems: InputProblems | undefined): string {
  return problems === undefined ? '' : `${problems.reason}\0${problems.message}`;
}

/**
 * The watcher of the operator: the inputs of every Stackerfile's published images in one index,
 * checked on their schedules, on registry push notifications and right after a Stackerfile
 * publishes (the cascade). Runs only while this replica leads.
 */
export class WatchService implements InputWatcher {
  readonly #o: WatchServiceOptions;
  readonly #index = new InputIndex();
  readonly #graph = new CascadeGraph();
  #poller: Poller;
  #scheduler: Scheduler;
  #stopped = false;
  readonly #watched = new Map<string, string>();
  /** The dependency cycles as last found, and their members. */
  #cycles: string[][] = [];
  #inCycles = new Set<string>();
  readonly #invalidSchedules = new Map<string, string>();
  /** What each owner's problems were when it was last re-queued for them. */
  readonly #reported = new Map<string, string>();
  /**
   * Per input key checked by this poller: what its owners' problems depend on (its registry's
   * health, its own error) after its latest check. A cycle that finds these as they were
   * re-examines no owner: 10,000 Stackerfiles on 100 inputs cost 100 comparisons a tick.
   */
  #checkStates = new Map<string, string>();
  #webhook: WebhookReceiver | undefined;

  constructor(options: WatchServiceOptions) {
    this.#o = options;
    this.#poller = this.#newPoller();
    this.#scheduler = this.#newScheduler();
  }

  #newPoller(): Poller {
    const { logger, requeue, insecureRegistries, credentialsFor, rateLimit } = this.#o;
    return new Poller({
      index: this.#index,
      ...(rateLimit === undefined ? {} : { limits: new RateLimits({ defaults: rateLimit }) }),
      ...(insecureRegistries === undefined ? {} : { insecureRegistries }),
      ...(credentialsFor === undefined ? {} : { credentialsFor }),
      // Checks are shared by every owner of an input; the first owner's namespace takes the turn.
      tenantOf: (key) => splitKey(this.#index.ownersOf(key)[0] ?? '/').namespace,
      onChange: (key, previous, current, owners) => {
        logger.info({ input: key, previous, current, stackerfiles: owners.length }, previous === undefined ? 'input checked' : 'input changed');
        // A first sighting: owners still awaiting another input's first check are re-queued when that one ends.
        requeue(previous === undefined ? owners.filter((owner) => !this.awaitingCheck(owner)) : owners);
      },
      onError: (error) => logger.warn({ err: error }, 'input check failed'),
    });
  }

  #newScheduler(): Scheduler {
    return new Scheduler({
      logger: this.#o.logger.child({ component: 'cron' }),
      onTick: (schedule) => this.#checked(this.#poller.poll(schedule)),
      onError: (schedule, error) => this.#o.logger.warn({ schedule, err: error }, 'scheduled input check failed'),
      ...(this.#o.jitterWindowMs === undefined ? {} : { jitterWindowMs: this.#o.jitterWindowMs }),
    });
  }

  /** The webhook receiver's URL, when one was asked for. */
  get webhookUrl(): string | undefined {
    return this.#webhook?.url;
  }

  /** Starts polling (again, after stop: a replica that leads anew) and the webhook receiver. */
  async start(): Promise<void> {
    if (this.#stopped) {
      this.#stopped = false;
      this.#poller = this.#newPoller();
      this.#checkStates = new Map();
      this.#scheduler = this.#newScheduler();
      this.#scheduler.sync(this.#index.schedules());
      // Leading anew: every input is checked now, so registry health and errors are this term's and no status waits for a tick.
      if (this.#index.size > 0) void this.#checked(this.#poller.triggerNow(this.#index.keys()));
    }
    const webhook = this.#o.webhook;
    if (webhook === undefined || this.#webhook !== undefined) return;
    this.#webhook = await startWebhook({
      secret: webhook.secret,
      ...(webhook.tls === undefined ? {} : { tls: webhook.tls }),
      host: webhook.host,
      port: webhook.port,
      isWatched: (key) => this.#index.checksOf(key).length > 0,
      // The registry notifies before it moves the tag: the poller looks again until it shows the announced digest.
      onPush: (keys, announced) => {
        const checks = keys.flatMap((key) => this.#index.checksOf(key));
        const digests = new Map([...announced].flatMap(([key, digest]) => this.#index.checksOf(key).map((check) => [check, digest] as const)));
        return this.#checked(this.#poller.triggerNow(checks, digests));
      },
      onError: (error) => this.#o.logger.warn({ err: error }, 'registry notification failed'),
    });
    this.#o.logger.info({ url: this.#webhook.url }, 'receiving registry notifications');
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#poller.stop();
    await this.#scheduler.stop();
    await this.#webhook?.close();
    this.#webhook = undefined;
  }

  watch(owner: string, watched: WatchedStackerfile): void {
    // Reconciles repeat: only a change of what is watched touches the index, the graph and the schedules.
    const fingerprint = JSON.stringify(watched);
    if (this.#watched.get(owner) === fingerprint) return;
    this.#watched.set(owner, fingerprint);
    try {
      validateSchedule(watched.schedule, this.#o.minScheduleIntervalMs);
      this.#invalidSchedules.delete(owner);
    } catch (error) {
      this.#invalidSchedules.set(owner, error instanceof Error ? error.message : String(error));
      this.#forgetInputs(owner);
      return;
    }
    const known = new Set(this.#index.keysOf(owner));
    this.#index.set(owner, watched.inputs, watched.schedule, watched.credentials);
    this.#dropCheckStates(known);
    this.#graph.set(owner, { inputs: watched.inputs.map((input) => input.ref), outputs: watched.outputs });
    this.#scheduler.sync(this.#index.schedules());
    this.#updateCycles(owner);
    // Inputs never checked are checked now, not at the next tick: a new Stackerfile, or one restarted.
    const unchecked = this.#index.keysOf(owner).filter((key) => !known.has(key) && this.#index.digestOf(key) === undefined);
    if (unchecked.length > 0) void this.#checked(this.#poller.triggerNow(unchecked));
  }

  forget(owner: string): void {
    this.#watched.delete(owner);
    this.#invalidSchedules.delete(owner);
    this.#reported.delete(owner);
    this.#forgetInputs(owner);
  }

  currentDigests(owner: string): ReadonlyMap<string, string> {
    const digests = new Map<string, string>();
    for (const input of this.#index.inputsOf(owner)) {
      const key = this.#index.keyFor(owner, input.ref);
      const digest = key === undefined ? undefined : this.#index.digestOf(key);
      if (digest !== undefined) digests.set(input.ref, digest);
    }
    return digests;
  }

  awaitingCheck(owner: string): boolean {
    return this.#index.keysOf(owner).some((key) => this.#index.digestOf(key) === undefined && this.#poller.lastError(key) === undefined);
  }

  problems(owner: string): InputProblems | undefined {
    const invalid = this.#invalidSchedules.get(owner);
    if (invalid !== undefined) return { ok: false, reason: 'InvalidSchedule', message: invalid };
    const cycle = this.#inCycles.has(owner) ? this.#cycles.find((members) => members.includes(owner)) : undefined;
    if (cycle !== undefined) {
      return { ok: false, reason: 'DependencyCycle', message: `Stackerfiles ${cycle.join(', ')} use each other's images: no update is made until the cycle is broken` };
    }
    const health = this.#poller.health();
    const registries = [...new Set(this.#index.keysOf(owner).flatMap((key) => this.#index.get(key)?.ref ?? []).map(registryOf))];
    const unreachable = registries.flatMap((registry) => {
      const state = health.get(registry);
      return state?.reachable === false ? [`${registry} (since ${state.since.toISOString()}): ${state.message}`] : [];
    });
    if (unreachable.length > 0) return { ok: false, reason: 'RegistryUnreachable', message: `not answering, retried with backoff: ${unreachable.join('; ')}` };
    const failed = this.#index.keysOf(owner).flatMap((key) => {
      const error = this.#poller.lastError(key);
      return error === undefined ? [] : [`${key}: ${error}`];
    });
    if (failed.length > 0) return { ok: false, reason: 'CheckFailed', message: `the registry answered with an error, checked again on schedule: ${failed.join('; ')}` };
    if (registries.length === 0 || registries.some((registry) => health.get(registry) === undefined)) return undefined;
    return { ok: true, reason: 'Checked', message: `the registries of all ${this.#index.keysOf(owner).length} input(s) answered the last check` };
  }

  published(refs: readonly string[]): void {
    const keys = refs.flatMap((ref) => {
      const key = inputKey(ref);
      return key === undefined ? [] : this.#index.checksOf(key);
    });
    if (keys.length > 0) void this.#checked(this.#poller.triggerNow(keys));
  }

  #forgetInputs(owner: string): void {
    const known = this.#index.keysOf(owner);
    this.#index.remove(owner);
    this.#dropCheckStates(known);
    this.#graph.remove(owner);
    this.#scheduler.sync(this.#index.schedules());
    this.#updateCycles(owner);
  }

  /**
   * Finds the cycles again after `owner`'s edges changed, only when it can be in one (something
   * uses its images) or was in one: over thousands of Stackerfiles whose images nobody else
   * uses, a search of the whole graph per Stackerfile would cost the square of their number.
   */
  #updateCycles(owner: string): void {
    if (!this.#inCycles.has(owner) && this.#graph.successorsOf(owner).length === 0) return;
    this.#cycles = this.#graph.cycles();
    const members = new Set(this.#cycles.flat());
    const affected = [...new Set([...this.#inCycles, ...members])].filter((member) => this.#inCycles.has(member) !== members.has(member));
    this.#inCycles = members;
    if (affected.length > 0) this.#requeueChanged(affected);
  }

  /** Forgets the check states of these keys once no owner watches them. */
  #dropCheckStates(keys: Iterable<string>): void {
    for (const key of keys) if (!this.#index.has(key)) this.#checkStates.delete(key);
  }

  /** What an owner's problems take from this key's latest check. */
  #checkState(key: string): string {
    const ref = this.#index.get(key)?.ref;
    return JSON.stringify([ref === undefined ? null : (this.#poller.health().get(registryOf(ref)) ?? null), this.#poller.lastError(key) ?? null]);
  }

  /**
   * After a check: the owners of inputs whose check state changed (a registry went down or came
   * back, an error appeared or went) are re-queued when their problems changed. An input whose
   * first check failed re-queues every owner no longer awaiting a check (their status waits for
   * it); a first check that succeeded did so already (onChange).
   */
  async #checked(check: Promise<Map<string, CheckResult>>): Promise<void> {
    const results = await check;
    const changed: string[] = [];
    const firstFailed: string[] = [];
    for (const [key, result] of results) {
      if (!this.#index.has(key)) continue;
      const state = this.#checkState(key);
      const before = this.#checkStates.get(key);
      if (before === state) continue;
      this.#checkStates.set(key, state);
      const owners = this.#index.ownersOf(key);
      if (before !== undefined) changed.push(...owners);
      else if ('error' in result) firstFailed.push(...owners.filter((owner) => !this.awaitingCheck(owner)));
    }
    this.#requeueChanged(changed, firstFailed);
  }

  /** Re-queues the owners whose problems differ from those they were last re-queued for, and every one of `always`. */
  #requeueChanged(owners: readonly string[], always: readonly string[] = []): void {
    const forced = new Set(always);
    const requeued = [...new Set([...owners, ...always])].filter((owner) => {
      const now = describe(this.problems(owner));
      if (this.#reported.get(owner) === now && !forced.has(owner)) return false;
      this.#reported.set(owner, now);
      return true;
    });
    if (requeued.length > 0) this.#o.requeue(requeued);
  }
}
