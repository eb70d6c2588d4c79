import type { KubernetesListObject, V1Pod } from '@kubernetes/client-node';
import { decodeResultMessage } from '../engine/build/result-message.ts';
import { buildPod, buildPodLabels, buildPodName, recipeConfigMapName } from './build-pod.ts';
import { buildResultOf, type BuildProgress, type BuildRequest, type Executor, type ExecutorContext } from './executor.ts';
import { Informer } from './informer.ts';
import { labelValue } from './names.ts';
import { statusCode, type Kube } from './kube.ts';

const component = 'restack-build';
const container = 'build';

/** Waiting reasons after which the container will not start without someone changing something. */
const stuck = new Set(['ImagePullBackOff', 'ErrImageNeverPull', 'InvalidImageName', 'CreateContainerConfigError', 'CreateContainerError']);

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
  if (phase === 'Failed' || phase === 'Succeeded') {
    // An eviction says nothing about the build: it may pass on another try.
    return failed(`is ${phase} without a result: ${pod.status?.reason ?? 'no reason given'}${pod.status?.message === undefined ? '' : `: ${pod.status.message}`}`, pod.status?.reason === 'Evicted');
  }
  if (pod.metadata?.deletionTimestamp !== undefined) return failed('was deleted before it finished');
  const waiting = state?.waiting;
  if (waiting?.reason !== undefined && stuck.has(waiting.reason)) {
    return failed(`cannot start: ${waiting.reason}${waiting.message === undefined ? '' : `: ${waiting.message}`}; check spec.builder.image and the operator's --builder-image`);
  }
  return { state: 'running', podName: name };
}

/**
 * Runs each build in a pod (build-pod.ts) with its recipe in a ConfigMap, and follows the pods
 * with an informer: a pod's change re-queues its ImageBuild. Restart-safe by construction: the
 * pod's name is the ImageBuild's, so a restarted operator finds and follows it.
 */
export class PodExecutor implements Executor {
  readonly #builderImage: string;
  #context: ExecutorContext | undefined;
  #pods: Informer<V1Pod> | undefined;

  constructor(options: { builderImage: string }) {
    this.#builderImage = options.builderImage;
  }

  async start(context: ExecutorContext): Promise<void> {
    this.#context = context;
    const { kube, namespace } = context;
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

  async step(request: BuildRequest): Promise<BuildProgress> {
    const kube = this.#kube();
    const { namespace, name } = request.imageBuild;
    const podName = buildPodName(name);
    const pod = this.#pods?.get(`${namespace}/${podName}`) ?? (await this.#readPod(kube, namespace, podName));
    if (pod !== undefined) return podProgress(pod, request);
    if (request.podName !== undefined) {
      return { state: 'done', result: { ok: false, message: `the build pod ${namespace}/${request.podName} is gone before it finished (deleted?); nothing is left to follow` } };
    }
    try {
      // Checked here: a pod whose Secret volume is missing would wait forever in ContainerCreating.
      if (request.pushSecretName !== undefined) await kube.dockerConfigJson(namespace, request.pushSecretName);
    } catch (error) {
      return { state: 'done', result: { ok: false, message: error instanceof Error ? error.message : String(error) } };
    }
    const owner = { apiVersion: 'restack.dev/v1alpha1', kind: 'ImageBuild', name, uid: request.imageBuild.uid, controller: true, blockOwnerDeletion: true };
    const configMap = recipeConfigMapName(name);
    await createUnlessExists(() =>
      kube.core.createNamespacedConfigMap({
        namespace,
        body: { metadata: { name: configMap, namespace, labels: { [buildPodLabels.imageBuild]: labelValue(name) }, ownerReferences: [owner] }, data: { 'stacker.yaml': request.recipe } },
      }),
    );
    const body = buildPod({
      imageBuild: request.imageBuild,
      stackerfileName: request.stackerfileName,
      builderImage: request.builder.image ?? this.#builderImage,
      recipeConfigMap: configMap,
      push: `docker://${request.registry}`,
      tags: request.tags,
      substitutions: request.substitutions,
      insecure: request.insecure,
      ...(request.pushSecretName === undefined ? {} : { pushSecretName: request.pushSecretName }),
      ...(request.builder.resources === undefined ? {} : { resources: request.builder.resources }),
      storage: request.builder.storage,
    });
    await createUnlessExists(() => kube.core.createNamespacedPod({ namespace, body }));
    return { state: 'started', podName };
  }

  /** The recipe ConfigMap goes; a pod that never finished (stuck, say) goes too, so it cannot push later. */
  async release(imageBuild: BuildRequest['imageBuild']): Promise<void> {
    const kube = this.#kube();
    const { namespace, name } = imageBuild;
    await deleteUnlessGone(() => kube.core.deleteNamespacedConfigMap({ namespace, name: recipeConfigMapName(name) }));
    const pod = this.#pods?.get(`${namespace}/${buildPodName(name)}`);
    const phase = pod?.status?.phase;
    if (pod !== undefined && phase !== 'Succeeded' && phase !== 'Failed') {
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

async function createUnlessExists(create: () => Promise<unknown>): Promise<void> {
  try {
    await create();
  } catch (error) {
    if (statusCode(error) !== 409) throw error;
  }
}

async function deleteUnlessGone(remove: () => Promise<unknown>): Promise<void> {
  try {
    await remove();
  } catch (error) {
    if (statusCode(error) !== 404) throw error;
  }
}
