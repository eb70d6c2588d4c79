import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import type { ResultMessage } from '../engine/build/result-message.ts';
import type { Refusal } from './build-policy.ts';
import type { Kube } from './kube.ts';
import type { BuilderSpec, ImageBuildStatus } from './resources.ts';

/** Everything an executor needs to run one Build ImageBuild. */
export interface BuildRequest {
  imageBuild: { name: string; namespace: string; uid: string };
  stackerfileName: string;
  recipe: string;
  /** host[:port]/prefix; each layer goes to <registry>/<layer name>. */
  registry: string;
  tags: string[];
  insecure: boolean;
  substitutions: Record<string, string>;
  /** A kubernetes.io/dockerconfigjson Secret in the ImageBuild's namespace. */
  pushSecretName?: string;
  /** A Secret in the ImageBuild's namespace with the signing key (src/operator/signing.ts). */
  signingSecretName?: string;
  /**
   * The Stackerfile's own layer record key (deriveRecordKey of the operator's master key): the
   * build signs its layers' change records with it. Without one, the build records nothing.
   */
  layerRecordKey?: Uint8Array;
  builder: BuilderSpec;
  /** The pod status.podName records: a run was started before, maybe by an earlier operator process. */
  podName?: string;
}

export type BuildOutput = NonNullable<ImageBuildStatus['outputs']>[number];

/** `retryable`: the failure may pass on its own (the registry down or rate limiting, the pod evicted); the Stackerfile tries again with backoff. */
export type BuildResult = { ok: true; outputs: BuildOutput[] } | { ok: false; message: string; retryable?: boolean };

/** Builder error codes of failures that may pass on their own: the registry did not answer, failed, or rate limited. */
const retryableCodes = new Set(['UNREACHABLE', 'REGISTRY_ERROR', 'TOOMANYREQUESTS']);

/**
 * Where a build stands after `step`: `started` when this call began a run (so a build recorded
 * Running before was restarted), `running` while one is under way, `done` with its result.
 * `recheckAfterMs`: step again after this long even without news (a pod that has not started yet).
 */
export type BuildProgress = { state: 'started' | 'running'; podName?: string; recheckAfterMs?: number } | { state: 'done'; result: BuildResult };

export interface ExecutorContext {
  kube: Kube;
  kubeConfig: KubeConfig;
  /** Only this namespace; all when undefined. */
  namespace?: string;
  logger: Logger;
  /** Re-queues the ImageBuild `namespace/name`: its run moved on (finished, or its pod changed). */
  onProgress: (imageBuildKey: string) => void;
}

/**
 * Runs builds without blocking the caller for their duration (level-triggered): `step` starts a
 * run or reports on it, and `onProgress` asks for the next `step` once there is news.
 */
export interface Executor {
  /** Resolves once the executor can answer `step` from what it watches. */
  start(context: ExecutorContext): Promise<void>;
  stop(): Promise<void>;
  step(request: BuildRequest): Promise<BuildProgress>;
  /** Why builds with this spec.builder cannot run here (checked before an ImageBuild is created); undefined when they can. */
  refuse?(builder: BuilderSpec): Refusal | undefined;
  /** The outcome is recorded in the ImageBuild's status: let go of what its run still holds. */
  release(imageBuild: BuildRequest['imageBuild']): Promise<void>;
}

/** The builder's result as an ImageBuild outcome; refs the result left out are derived from the request. */
export function buildResultOf(message: ResultMessage, request: BuildRequest): BuildResult {
  const note = message.dropped === undefined ? '' : `\n(the result left out ${message.dropped.join(', ')} to fit the termination message)`;
  if ('error' in message) {
    const { step, layer, code, message: text, lastLines = [] } = message.error;
    const where = [layer === undefined ? '' : `layer ${layer}`, step === undefined ? '' : `step ${step}`].filter((part) => part !== '').join(', ');
    return { ok: false, message: [`${where === '' ? '' : `${where}: `}${code}: ${text}`, ...lastLines].join('\n') + note, ...(retryableCodes.has(code) ? { retryable: true } : {}) };
  }
  const tag = request.tags[0] ?? 'latest';
  return {
    ok: true,
    outputs: message.outputs.map((output) => ({
      name: output.name,
      digest: output.digest,
      ref: output.ref ?? `${request.registry}/${output.name.toLowerCase()}:${tag}`,
      ...(output.inputs === undefined ? {} : { inputs: output.inputs }),
    })),
  };
}
