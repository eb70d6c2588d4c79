import type { Logger } from 'pino';
import { statusCode, type Kube } from './kube.ts';

/** On the leader's pod only: a Service selecting it (the chart's registry webhook) reaches the one replica that acts. */
const leaderLabel = 'restack.dev/leader';

export interface LeaderPodLabelOptions {
  kube: Kube;
  namespace: string;
  /** This replica's pod (the downward API's metadata.name). */
  pod: string;
  logger: Logger;
  /** Wait before trying a failed patch again, while the wanted state holds. */
  retryMs?: number;
}

/**
 * Keeps the leader label on this replica's pod in step with leadership. Patches are made one at a
 * time and only the last wanted state is applied; a failed patch is tried again until it holds or
 * the wanted state changes.
 */
export class LeaderPodLabel {
  readonly #o: LeaderPodLabelOptions;
  #wanted = false;
  #chain: Promise<void> = Promise.resolve();
  #retry: NodeJS.Timeout | undefined;

  constructor(options: LeaderPodLabelOptions) {
    this.#o = options;
  }

  /**
   * Removes a label a previous process in this pod may have left (it died leading). A pod that
   * does not exist or cannot be patched is a configuration error, named here.
   */
  async clear(): Promise<void> {
    this.#wanted = false;
    try {
      await this.#patch(false);
    } catch (error) {
      const code = statusCode(error);
      const where = `pod ${this.#o.namespace}/${this.#o.pod}`;
      if (code === 404) throw new Error(`--leader-pod-name ${this.#o.pod}: there is no ${where}; give this replica's own pod name (the downward API's metadata.name) and --leader-election-namespace its namespace`);
      if (code === 403) throw new Error(`--leader-pod-name ${this.#o.pod}: the operator may not patch ${where}; grant patch on pods in ${this.#o.namespace} (config/rbac/leader-election-role.yaml)`);
      this.#failed(error);
    }
  }

  /** Labels the pod while leading, unlabels it otherwise; resolves once this state (or a later one) is applied or has failed once. */
  set(leading: boolean): Promise<void> {
    this.#wanted = leading;
    clearTimeout(this.#retry);
    this.#chain = this.#chain.then(async () => {
      if (this.#wanted !== leading) return;
      try {
        await this.#patch(leading);
      } catch (error) {
        this.#failed(error);
      }
    });
    return this.#chain;
  }

  stop(): void {
    clearTimeout(this.#retry);
  }

  async #patch(leading: boolean): Promise<void> {
    await this.#o.kube.labelPod(this.#o.namespace, this.#o.pod, leaderLabel, leading ? 'true' : null);
    this.#o.logger.info({ pod: this.#o.pod, [leaderLabel]: leading }, leading ? 'labelled this pod as the leader' : 'this pod is not labelled as the leader');
    if (leading) await this.#unlabelFormerLeaders();
  }

  /**
   * A replica that died leading keeps its label until its next process starts, and the Service
   * would route to it meanwhile: the new leader takes that label off. Best effort: a failure leaves
   * the label to that next process, as before.
   */
  async #unlabelFormerLeaders(): Promise<void> {
    const { kube, namespace, pod, logger } = this.#o;
    try {
      const former = (await kube.podNames(namespace, `${leaderLabel}=true`)).filter((name) => name !== pod);
      for (const name of former) {
        await kube.labelPod(namespace, name, leaderLabel, null).catch((error: unknown) => {
          if (statusCode(error) !== 404) throw error;
        });
        logger.info({ pod: name }, `removed the ${leaderLabel} label of a former leader's pod`);
      }
    } catch (error) {
      const hint = statusCode(error) === 403 ? `; grant list and patch on pods in ${namespace} (config/rbac/leader-election-role.yaml)` : '';
      logger.warn({ err: error }, `cannot remove the ${leaderLabel} label from former leaders' pods${hint}`);
    }
  }

  #failed(error: unknown): void {
    const leading = this.#wanted;
    this.#o.logger.warn({ pod: this.#o.pod, err: error }, `cannot ${leading ? 'set' : 'remove'} the ${leaderLabel} label of this pod; trying again`);
    clearTimeout(this.#retry);
    this.#retry = setTimeout(() => void this.set(leading), this.#o.retryMs ?? 2000);
    this.#retry.unref();
  }
}
