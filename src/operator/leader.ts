import { CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { statusCode } from './kube.ts';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationMs: number;
  renewEveryMs: number;
  logger: Logger;
  onStartedLeading: () => void;
  onStoppedLeading: () => void;
}

/** Whether `identity` may take the lease now: it is free, expired or already its own. */
export function mayAcquire(lease: V1Lease | undefined, identity: string, nowMs: number): boolean {
  const spec = lease?.spec;
  if (spec?.holderIdentity === undefined || spec.holderIdentity === '' || spec.holderIdentity === identity) return true;
  const renewed = spec.renewTime === undefined ? 0 : new Date(spec.renewTime).getTime();
  return renewed + (spec.leaseDurationSeconds ?? 15) * 1000 < nowMs;
}

/**
 * Leader election over a coordination.k8s.io/v1 Lease, as client-go's: writes are optimistic
 * (resourceVersion), so of two candidates only one wins; a leader that cannot renew stops
 * leading just before the lease expires, before another may take over.
 */
export class LeaderElector {
  readonly #o: LeaderElectionOptions;
  readonly #api: CoordinationV1Api;
  #leading = false;
  #lastRenewMs = 0;
  #timer: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #stopped = false;
  /** True while the last attempt reached the API server (a standby that can talk is healthy). */
  healthy = true;

  constructor(options: LeaderElectionOptions) {
    this.#o = options;
    this.#api = options.kubeConfig.makeApiClient(CoordinationV1Api);
  }

  get leading(): boolean {
    return this.#leading;
  }

  start(): void {
    this.#stopped = false;
    void this.#tick();
  }

  /** Stops; a leader gives the lease up so a standby takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#deadline);
    if (!this.#leading) return;
    this.#setLeading(false);
    try {
      const lease = await this.#api.readNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace });
      if (lease.spec?.holderIdentity === this.#o.identity) {
        lease.spec.holderIdentity = '';
        await this.#api.replaceNamespacedLease({ name: this.#o.name, namespace: this.#o.namespace, body: lease });
      }
    } catch (error) {
      this.#o.logger.warn({ err: error }, 'could not release the leader lease');
    }
  }

  async #tick(): Promise<void> {
    try {
      await this.#tryAcquireOrRenew();
      this.healthy = true;
    } catch (error) {
      this.healthy = false;
      this.#o.logger.warn({ err: error }, 'leader election: the lease could not be read or written');
    }
    // A leader that failed to renew tries again soon: its deadline is running.
    const renewed = this.#leading && Date.now() - this.#lastRenewMs < this.#o.renewEveryMs;
    const retry = renewed ? this.#o.renewEveryMs : this.#leading ? Math.min(1000, this.#o.renewEveryMs) : Math.max(1000, this.#o.renewEveryMs / 2);
    if (!this.#stopped) this.#timer = setTimeout(() => void this.#tick(), retry);
  }

  /**
   * client-go's renew deadline: a leader that has not renewed stops leading a little before the
   * lease expires, so it has stopped before a standby (which waits the whole lease duration from
   * the last renewal) may take over. Two leaders never overlap, clock skew aside.
   */
  #armRenewDeadline(): void {
    clearTimeout(this.#deadline);
    const margin = Math.min(1000, this.#o.leaseDurationMs / 4);
    this.#deadline = setTimeout(() => {
      if (!this.#leading) return;
      this.#o.logger.error('could not renew the leader lease before its deadline: stopping reconciling');
      this.#setLeading(false);
    }, this.#o.leaseDurationMs - margin);
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const { name, namespace, identity } = this.#o;
    // MicroTime: the API server wants six fractional digits, which a plain Date does not give.
    const now = new V1MicroTime();
    let lease: V1Lease | undefined;
    try {
      lease = await this.#api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
    }
    if (!mayAcquire(lease, identity, now.getTime())) {
      if (this.#leading) this.#setLeading(false);
      return;
    }
    const taking = lease?.spec?.holderIdentity !== identity;
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds: Math.ceil(this.#o.leaseDurationMs / 1000),
      renewTime: now,
      acquireTime: taking ? now : (lease?.spec?.acquireTime ?? now),
      leaseTransitions: (lease?.spec?.leaseTransitions ?? 0) + (taking && lease !== undefined ? 1 : 0),
    };
    try {
      if (lease === undefined) await this.#api.createNamespacedLease({ namespace, body: { metadata: { name, namespace }, spec } });
      else await this.#api.replaceNamespacedLease({ name, namespace, body: { ...lease, spec } });
    } catch (error) {
      // 409: another candidate wrote first; it leads.
      if (statusCode(error) === 409) return;
      throw error;
    }
    this.#lastRenewMs = Date.now();
    this.#armRenewDeadline();
    if (!this.#leading) this.#setLeading(true);
  }

  #setLeading(leading: boolean): void {
    this.#leading = leading;
    if (leading) this.#o.onStartedLeading();
    else this.#o.onStoppedLeading();
  }
}
