import type { KubernetesListObject, V1Pod } from '@kubernetes/client-node';
import { decodeResultMessage } from '../engine/build/result-message.ts';
import { buildPod, buildPodLabels, buildPodLayout, buildPodName, recipeConfigMapName, recordKeyEntry, recordKeySecretName } from './build-pod.ts';
import { builderRefusal, buildPodSettings, durationSeconds, serverVersionRefusal, type BuildPolicy, type Refusal } from './build-policy.ts';
import { buildResultOf, type BuildProgress, type BuildRequest, type BuildResult, type Executor, type ExecutorContext } from './executor.ts';
import { Informer } from './informer.ts';
import { apiMessage, statusCode, type Kube } from './kube.ts';
import { labelValue } from './names.ts';
import { outputOpener } from './output-registry.ts';
import type { BuilderSpec } from './resources.ts';
import { verifyBuildOutputs } from './verify-outputs.ts';

const component = 'restack-build';
const container = 'build';

/** Waiting reasons after which the container will not start without someone changing something, with what to check. */
const imageHint = "check spec.builder.image and the operator's --builder-image";
const stuck = new Map([
  ['ImagePullBackOff', imageHint],
  ['ErrImageNeverPull', imageHint],
  ['InvalidImageName', imageHint],
  ['CreateContainerConfigError', "check the Secrets and ConfigMaps the pod mounts"],
  ['CreateContainerError', 'a node without the seccomp profile restack/build.json fails here: install it (docs/install.md)'],
]);

/** "Reason: message", or the reason alone. */
const withMessage = (reason: string, message: string | undefined) => `${reason}${message === undefined || message === '' ? '' : `: ${message}`}`;

/**
 * Where a build pod stands, read from its status: still running, or done with the result the
 * builder left in its termination message, or with what the kubelet says went wrong.
 */
export function podProgress(pod: V1Pod, request: BuildRequest): BuildProgress {
  const name = pod.metadata?.name ?? buildPodName(request.imageBuild.name);
  const failed = (what: string, retryable = false): BuildProgress => ({
    state: 'done',
    result: { ok: false, message: `the build pod ${request.imageBuild.namespace}/${name} ${what}`, ...(retryable ? { retryable } : {}) },
  });
  const state = pod.status?.containerStatuses?.find((status) => status.name === container)?.state;
  const terminated = state?.terminated;
  if (terminated !== undefined) {
    const result = decodeResultMessage(terminated.message ?? '');
    if (result !== undefined) return { state: 'done', result: buildResultOf(result, request) };
    const message = terminated.message?.trim() ?? '';
    return failed(`ended without a result: ${terminated.reason ?? 'no reason given'} (exit code ${terminated.exitCode})${message === '' ? '' : `\n${message}`}`);
  }
  const phase = pod.status?.phase;
  if (pod.status?.reason === 'DeadlineExceeded') {
    return failed(`ran longer than its deadline of ${pod.spec?.activeDeadlineSeconds ?? '?'} s and was stopped; raise spec.builder.timeout (default: the operator's --build-pod-defaults timeout)`);
  }
  if (phase === 'Failed' || phase === 'Succeeded') {
    // An eviction says nothing about the build: it may pass on another try.
    return failed(`is ${phase} without a result: ${withMessage(pod.status?.reason ?? 'no reason given', pod.status?.message)}`, pod.status?.reason === 'Evicted');
  }
  if (pod.metadata?.deletionTimestamp !== undefined) return failed('was deleted before it finished');
  const waiting = state?.waiting;
  const hint = stuck.get(waiting?.reason ?? '');
  if (waiting?.reason !== undefined && hint !== undefined) return failed(`cannot start: ${withMessage(waiting.reason, waiting.message)}; ${hint}`);
  return { state: 'running', podName: name };
}

/** Whether the build container ever ran: until then, a pod can wait forever for a node, a sandbox, a volume. */
export function containerStarted(pod: V1Pod): boolean {
  const state = pod.status?.containerStatuses?.find((status) => status.name === container)?.state;
  return state?.running !== undefined || state?.terminated !== undefined;
}

/** What holds a pod that has not started: its container's waiting reason, else the scheduler's verdict, else its phase. */
export function notStartedBecause(pod: V1Pod): string {
  const waiting = pod.status?.containerStatuses?.find((status) => status.name === container)?.state?.waiting;
  if (waiting?.reason !== undefined) return withMessage(waiting.reason, waiting.message);
  const scheduled = pod.status?.conditions?.find((condition) => condition.type === 'PodScheduled');
  if (scheduled?.status === 'False') return `not scheduled: ${withMessage(scheduled.reason ?? '', scheduled.message)}`;
  const node = pod.spec?.nodeName;
  return `${pod.status?.phase ?? 'Pending'}${node === undefined ? '' : ` on node ${node}`}, no container status yet`;
}

export interface PodExecutorOptions {
  policy: BuildPolicy;
  /** How often a pod that has not started is looked at again (its push Secret, its deadline); default 15 s. */
  pendingRecheckMs?: number;
}

/** 4xx answers to a create that will not change by retrying: Pod Security, an admission policy, an invalid pod, RBAC. */
const refusedForGood = (code: number | undefined) => code !== undefined && code >= 400 && code < 500 && code !== 409 && code !== 429;

/**
 * Runs each build in a pod (build-pod.ts) with its recipe in a ConfigMap, and follows the pods
 * with an informer: a pod's change re-queues its ImageBuild. Restart-safe by construction: the
 * pod's name is the ImageBuild's, so a restarted operator finds and follows it.
 */
export class PodExecutor implements Executor {
  readonly #o: PodExecutorOptions;
  #context: ExecutorContext | undefined;
  #pods: Informer<V1Pod> | undefined;
  /** Set at start from the API server's version: pod builds are refused on a Kubernetes that may drop hostUsers. */
  #serverRefusal: Refusal | undefined;

  constructor(options: PodExecutorOptions) {
    this.#o = options;
  }

  async start(context: ExecutorContext): Promise<void> {
    this.#context = context;
    const { kube, namespace } = context;
    const version = await kube.version.getCode();
    this.#serverRefusal = serverVersionRefusal(version);
    if (this.#serverRefusal !== undefined) context.logger.error({ version: version.gitVersion }, this.#serverRefusal.message);
    const labelSelector = `${buildPodLabels.component}=${component}`;
    this.#pods = new Informer<V1Pod>({
      kubeConfig: context.kubeConfig,
      logger: context.logger,
      path: namespace === undefined ? '/api/v1/pods' : `/api/v1/namespaces/${namespace}/pods`,
      labelSelector,
      list: async () =>
        (namespace === undefined
          ? await kube.core.listPodForAllNamespaces({ labelSelector })
          : await kube.core.listNamespacedPod({ namespace, labelSelector })) as KubernetesListObject<V1Pod>,
      onChange: (pod) => {
        // The owner, not the label: a label value is bounded (names.ts) and may be a hash.
        const imageBuild = pod.metadata?.ownerReferences?.find((owner) => owner.controller === true && owner.kind === 'ImageBuild')?.name;
        if (imageBuild !== undefined) context.onProgress(`${pod.metadata?.namespace}/${imageBuild}`);
      },
    });
    await this.#pods.start();
  }

  async stop(): Promise<void> {
    await this.#pods?.stop();
  }

  refuse(builder: BuilderSpec): Refusal | undefined {
    return this.#serverRefusal ?? builderRefusal(this.#o.policy, builder);
  }

  async step(request: BuildRequest): Promise<BuildProgress> {
    const kube = this.#kube();
    const { namespace, name } = request.imageBuild;
    const podName = buildPodName(name);
    const pod = this.#pods?.get(`${namespace}/${podName}`) ?? (await this.#readPod(kube, namespace, podName));
    if (pod !== undefined) {
      const progress = podProgress(pod, request);
      return progress.state === 'running' && !containerStarted(pod) ? this.#notStarted(pod, request) : this.#checked(progress, request, kube);
    }
    if (request.podName !== undefined) {
      return { state: 'done', result: { ok: false, message: `the build pod ${namespace}/${request.podName} is gone before it finished (deleted?); nothing is left to follow` } };
    }
    const refusal = this.refuse(request.builder);
    if (refusal !== undefined) return done({ ok: false, message: refusal.message });
    // Checked here: a pod whose Secret volume is missing would wait in ContainerCreating.
    const secretProblem = await this.#secretProblem(request);
    if (secretProblem !== undefined) return done({ ok: false, message: secretProblem });
    const owner = { apiVersion: 'restack.dev/v1alpha1', kind: 'ImageBuild', name, uid: request.imageBuild.uid, controller: true, blockOwnerDeletion: true };
    const configMap = recipeConfigMapName(name);
    const configMapRefused = await createUnlessExists(() =>
      kube.core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: configMap, namespace, labels: { [buildPodLabels.imageBuild]: labelValue(name) }, ownerReferences: [owner] }, data: { 'stacker.yaml': request.recipe } },
      }),
    );
    if (configMapRefused !== undefined) return done({ ok: false, message: `the API server refused the recipe ConfigMap ${namespace}/${configMap}: ${configMapRefused}` });
    // The Stackerfile's record key, in a Secret of this build's alone, owned by the ImageBuild: the
    // garbage collector deletes it with it (the operator may create Secrets, never delete them).
    const recordKeySecret = recordKeySecretName(name);
    if (request.layerRecordKey !== undefined) {
      const key = Buffer.from(request.layerRecordKey).toString('base64');
      const secretRefused = await createUnlessExists(() =>
        kube.core.createNamespacedSecret({
          namespace,
          body: { metadata: { name: recordKeySecret, namespace, labels: { [buildPodLabels.imageBuild]: labelValue(name) }, ownerReferences: [owner] }, type: 'Opaque', data: { [recordKeyEntry]: key } },
        }),
      );
      if (secretRefused !== undefined) return done({ ok: false, message: `the API server refused the layer record key Secret ${namespace}/${recordKeySecret}: ${secretRefused}` });
    }
    const body = buildPod({
      imageBuild: request.imageBuild,
      stackerfileName: request.stackerfileName,
      recipeConfigMap: configMap,
      push: `docker://${request.registry}`,
      tags: request.tags,
      substitutions: request.substitutions,
      insecure: request.insecure,
      ...(request.pushSecretName === undefined ? {} : { pushSecretName: request.pushSecretName }),
      ...(request.signingSecretName === undefined ? {} : { signingSecretName: request.signingSecretName }),
      ...(request.layerRecordKey === undefined ? {} : { recordKeySecretName: recordKeySecret }),
      ...(request.builder.cacheRepository === undefined ? {} : { cacheRepository: `docker://${request.builder.cacheRepository}` }),
      settings: buildPodSettings(this.#o.policy, request.builder),
    });
    let created: V1Pod | undefined;
    const podRefused = await createUnlessExists(async () => (created = await kube.core.createNamespacedPod({ namespace, body })));
    if (podRefused !== undefined) return done({ ok: false, message: `the API server refused the build pod ${namespace}/${podName}: ${podRefused}` });
    // The API server drops fields it does not know or has disabled: a build pod without
    // hostUsers: false would hold CAP_SYS_ADMIN in the node's user namespace, so it must not run.
    if (created !== undefined && created.spec?.hostUsers !== false) {
      await deleteUnlessGone(() => kube.core.deleteNamespacedPod({ namespace, name: podName, gracePeriodSeconds: 0 }));
      return done({
        ok: false,
        message:
          `the API server dropped hostUsers: false from the build pod ${namespace}/${podName} (user namespaces for pods are off: Kubernetes before 1.33, or the UserNamespacesSupport feature gate disabled); ` +
          'the pod was deleted: without a user namespace its CAP_SYS_ADMIN would be the node\'s. Enable user namespaces for pods on the cluster',
      });
    }
    return { state: 'started', podName };
  }

  /** A pod whose container has not started: failed when its push Secret is gone or its start deadline passed, else looked at again. */
  async #notStarted(pod: V1Pod, request: BuildRequest): Promise<BuildProgress> {
    const name = pod.metadata?.name ?? buildPodName(request.imageBuild.name);
    const where = `the build pod ${request.imageBuild.namespace}/${name}`;
    const secretProblem = await this.#secretProblem(request);
    if (secretProblem !== undefined) return done({ ok: false, message: `${where} cannot start: ${secretProblem}` });
    const created = new Date(pod.metadata?.creationTimestamp ?? Date.now()).getTime();
    const startTimeoutMs = (durationSeconds(this.#o.policy.defaults.startTimeout) ?? 0) * 1000;
    const remaining = created + startTimeoutMs - Date.now();
    if (remaining > 0) return { state: 'running', podName: name, recheckAfterMs: Math.min(remaining + 100, this.#o.pendingRecheckMs ?? 15_000) };
    const warnings = await this.#warnings(pod);
    return done({
      ok: false,
      message: [`${where} did not start within ${this.#o.policy.defaults.startTimeout}: ${notStartedBecause(pod)}`, ...warnings].join('\n'),
    });
  }

  /** The latest Warning Events of a pod (FailedCreatePodSandBox, FailedMount, FailedScheduling...): where the kubelet says why. */
  async #warnings(pod: V1Pod): Promise<string[]> {
    const namespace = pod.metadata?.namespace ?? '';
    const events = await this.#kube().core.listNamespacedEvent({ namespace, fieldSelector: `involvedObject.uid=${pod.metadata?.uid ?? ''},type=Warning` });
    return events.items
      .sort((a, b) => eventTime(a) - eventTime(b))
      .slice(-3)
      .map((event) => `${event.reason ?? 'Warning'}: ${event.message ?? ''}`);
  }

  /** The Secrets a build needs (push credentials, signing key), missing or unusable: the reason, naming the spec field; undefined when they are there. */
  async #secretProblem(request: BuildRequest): Promise<string | undefined> {
    try {
      if (request.pushSecretName !== undefined) await this.#kube().dockerConfigJson(request.imageBuild.namespace, request.pushSecretName);
      if (request.signingSecretName !== undefined) await this.#kube().signingKey(request.imageBuild.namespace, request.signingSecretName);
      return undefined;
    } catch (error) {
      return error instanceof Error ? error.message : String(error);
    }
  }

  /** A pod's word is not taken for what it pushed: its outputs are checked against the registry (verify-outputs.ts). */
  async #checked(progress: BuildProgress, request: BuildRequest, kube: Kube): Promise<BuildProgress> {
    if (progress.state !== 'done' || !progress.result.ok) return progress;
    const open = await outputOpener(kube, request.imageBuild.namespace, request);
    return { state: 'done', result: await verifyBuildOutputs(request, progress.result.outputs, open, buildPodLayout) };
  }

  /**
   * The recipe ConfigMap goes; a pod that never finished (stuck, say) goes too, so it cannot push
   * later. A finished pod stays, with its logs, until its ImageBuild goes: finished is a terminated
   * build container, as a kubelet reports it before the pod's phase (which follows once the
   * sandbox is torn down).
   */
  async release(imageBuild: BuildRequest['imageBuild']): Promise<void> {
    const kube = this.#kube();
    const { namespace, name } = imageBuild;
    await deleteUnlessGone(() => kube.core.deleteNamespacedConfigMap({ namespace, name: recipeConfigMapName(name) }));
    const pod = this.#pods?.get(`${namespace}/${buildPodName(name)}`);
    const phase = pod?.status?.phase;
    const terminated = pod?.status?.containerStatuses?.find((status) => status.name === container)?.state?.terminated !== undefined;
    if (pod !== undefined && phase !== 'Succeeded' && phase !== 'Failed' && !terminated) {
      await deleteUnlessGone(() => kube.core.deleteNamespacedPod({ namespace, name: buildPodName(name) }));
    }
  }

  #kube(): Kube {
    if (this.#context === undefined) throw new Error('the pod executor was not started');
    return this.#context.kube;
  }

  async #readPod(kube: Kube, namespace: string, name: string): Promise<V1Pod | undefined> {
    try {
      return await kube.core.readNamespacedPod({ namespace, name });
    } catch (error) {
      if (statusCode(error) === 404) return undefined;
      throw error;
    }
  }
}

const done = (result: BuildResult): BuildProgress => ({ state: 'done', result });

const eventTime = (event: { lastTimestamp?: Date; eventTime?: Date; metadata?: { creationTimestamp?: Date } }) =>
  new Date(event.lastTimestamp ?? event.eventTime ?? event.metadata?.creationTimestamp ?? 0).getTime();

/** Creates unless it exists; the API server's message when it refused for good (retrying would not help), else undefined. */
async function createUnlessExists(create: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await create();
    return undefined;
  } catch (error) {
    const code = statusCode(error);
    if (code === 409) return undefined;
    if (refusedForGood(code)) return apiMessage(error);
    throw error;
  }
}

async function deleteUnlessGone(remove: () => Promise<unknown>): Promise<void> {
  try {
    await remove();
  } catch (error) {
    if (statusCode(error) !== 404) throw error;
  }
}
