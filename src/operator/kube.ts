import { CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, VersionApi, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { credentialsFromDockerConfigJson, type CredentialProvider } from '../oci/registry/credential-provider.ts';
import { parseDockerConfig, refuseCredentialHelpers } from '../oci/registry/credentials.ts';
import { SigningError } from '../sign/errors.ts';
import { group, version, type ImageBuildSpec, type ImageBuildStatus, type StackerfileSpec, type StackerfileStatus } from './resources.ts';
import { signingKeyFiles } from './signing.ts';

export interface Stackerfile extends KubernetesObject {
  spec: StackerfileSpec;
  status?: StackerfileStatus;
}
export interface ImageBuild extends KubernetesObject {
  spec: ImageBuildSpec;
  status?: ImageBuildStatus;
}

export const plurals = { Stackerfile: 'stackerfiles', ImageBuild: 'imagebuilds' } as const;
export type Kind = keyof typeof plurals;

/** client-go's pager default. */
const listPageSize = 500;

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch);

/** The API calls the controllers make: status writes, ImageBuild create and delete, Events, ConfigMaps. */
export class Kube {
  readonly objects: CustomObjectsApi;
  readonly core: CoreV1Api;
  readonly version: VersionApi;
  readonly #component: string;

  constructor(kubeConfig: KubeConfig, component = 'restack-operator') {
    this.objects = kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = kubeConfig.makeApiClient(CoreV1Api);
    this.version = kubeConfig.makeApiClient(VersionApi);
    this.#component = component;
  }

  listPath(kind: Kind, namespace: string | undefined): string {
    return `/apis/${group}/${version}${namespace === undefined ? '' : `/namespaces/${namespace}`}/${plurals[kind]}`;
  }

  /**
   * Every object of a kind, read in pages of `pageSize` (one consistent snapshot, as client-go's
   * pager does), so the operator never holds one response of thousands of objects at once.
   */
  async list(kind: Kind, namespace: string | undefined, pageSize = listPageSize): Promise<KubernetesListObject<KubernetesObject>> {
    const plural = plurals[kind];
    const items: KubernetesObject[] = [];
    let page: KubernetesListObject<KubernetesObject>;
    let next: string | undefined;
    do {
      const paging = { limit: pageSize, ...(next === undefined ? {} : { _continue: next }) };
      page = await (namespace === undefined
        ? this.objects.listClusterCustomObject({ group, version, plural, ...paging })
        : this.objects.listNamespacedCustomObject({ group, version, namespace, plural, ...paging }));
      items.push(...page.items);
      // Custom objects come back as the server's JSON, where the token is `continue` (typed lists say `_continue`).
      next = (page.metadata as { continue?: string } | undefined)?.continue || undefined;
    } while (next !== undefined);
    return { ...page, items };
  }

  /**
   * Returns the object as written, for the caller's cache. With `resourceVersion`, the write fails
   * with 409 Conflict when the object changed since it was read (a stale cache).
   */
  async patchStatus(kind: Kind, namespace: string, name: string, status: object, resourceVersion?: string): Promise<KubernetesObject> {
    const body = { ...(resourceVersion === undefined ? {} : { metadata: { resourceVersion } }), status };
    return (await this.objects.patchNamespacedCustomObjectStatus({ group, version, namespace, plural: plurals[kind], name, body }, mergePatch)) as KubernetesObject;
  }

  /** Sets a label of a pod, or removes it (`value` null). */
  async labelPod(namespace: string, name: string, label: string, value: string | null): Promise<void> {
    await this.core.patchNamespacedPod({ namespace, name, body: { metadata: { labels: { [label]: value } } } }, mergePatch);
  }

  /** The names of the pods in `namespace` that match `labelSelector`. */
  async podNames(namespace: string, labelSelector: string): Promise<string[]> {
    return (await this.core.listNamespacedPod({ namespace, labelSelector })).items.map((pod) => pod.metadata?.name ?? '');
  }

  async getImageBuild(namespace: string, name: string): Promise<ImageBuild> {
    return (await this.objects.getNamespacedCustomObject({ group, version, namespace, plural: plurals.ImageBuild, name })) as ImageBuild;
  }

  /** Creates the ImageBuild and returns it as created; undefined if one of that name exists already. */
  async createImageBuild(namespace: string, body: ImageBuild): Promise<ImageBuild | undefined> {
    try {
      return (await this.objects.createNamespacedCustomObject({ group, version, namespace, plural: plurals.ImageBuild, body })) as ImageBuild;
    } catch (error) {
      if (statusCode(error) === 409) return undefined;
      throw error;
    }
  }

  async deleteImageBuild(namespace: string, name: string): Promise<void> {
    try {
      await this.objects.deleteNamespacedCustomObject({ group, version, namespace, plural: plurals.ImageBuild, name });
    } catch (error) {
      if (statusCode(error) !== 404) throw error;
    }
  }

  /** The value of a ConfigMap key; undefined when the ConfigMap or the key is missing. */
  async configMapValue(namespace: string, name: string, key: string): Promise<{ found: 'configmap' | 'key' | 'none'; value?: string }> {
    try {
      const configMap = await this.core.readNamespacedConfigMap({ namespace, name });
      const value = configMap.data?.[key];
      return value === undefined ? { found: 'configmap' } : { found: 'key', value };
    } catch (error) {
      if (statusCode(error) === 404) return { found: 'none' };
      throw error;
    }
  }

  /**
   * The docker config of a kubernetes.io/dockerconfigjson Secret; errors name spec.output.pushSecretRef and the fix.
   * A tenant's Secret holds logins, never the name of a program for the operator (or its local builds) to run.
   */
  async dockerConfigJson(namespace: string, name: string): Promise<string> {
    const field = 'spec.output.pushSecretRef';
    let secret;
    try {
      secret = await this.core.readNamespacedSecret({ namespace, name });
    } catch (error) {
      if (statusCode(error) === 404) throw new Error(`${field}: Secret ${namespace}/${name} does not exist; create it (kubectl create secret docker-registry ${name} ...) or fix the name`);
      throw error;
    }
    const encoded = secret.data?.['.dockerconfigjson'];
    if (encoded === undefined) throw new Error(`${field}: Secret ${namespace}/${name} has no .dockerconfigjson key; make it a kubernetes.io/dockerconfigjson Secret`);
    const text = Buffer.from(encoded, 'base64').toString('utf8');
    const source = `${field}: Secret ${namespace}/${name}, key .dockerconfigjson`;
    refuseCredentialHelpers(parseDockerConfig(text, source), source);
    return text;
  }

  /** The signing key Secret of spec.output.signing.keySecretRef, laid out as `cosign generate-key-pair k8s://NAMESPACE/NAME` writes it. */
  async signingKey(namespace: string, name: string): Promise<{ key: string; password: string | undefined }> {
    const field = 'spec.output.signing.keySecretRef';
    let secret;
    try {
      secret = await this.core.readNamespacedSecret({ namespace, name });
    } catch (error) {
      if (statusCode(error) === 404) throw new SigningError('KEY_INVALID', `${field}: Secret ${namespace}/${name} does not exist`, `create it with cosign generate-key-pair k8s://${namespace}/${name}, or fix the name`);
      throw error;
    }
    const decode = (key: string) => (secret.data?.[key] === undefined ? undefined : Buffer.from(secret.data[key], 'base64').toString('utf8'));
    const key = decode(signingKeyFiles.key);
    if (key === undefined) throw new SigningError('KEY_INVALID', `${field}: Secret ${namespace}/${name} has no ${signingKeyFiles.key} key`, `create it with cosign generate-key-pair k8s://${namespace}/${name}`);
    return { key, password: decode(signingKeyFiles.password) };
  }

  /**
   * Registry credentials from a dockerconfigjson Secret, read at each lookup: a store keeps what it
   * found until a 401, then asks again, so a rotated Secret is used without a restart.
   */
  secretCredentials(namespace: string, name: string): CredentialProvider {
    return async (registry, repository) => credentialsFromDockerConfigJson(await this.dockerConfigJson(namespace, name), `Secret ${namespace}/${name}`)(registry, repository);
  }

  async event(object: KubernetesObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const meta = object.metadata ?? {};
    const now = new Date();
    await this.core.createNamespacedEvent({
      namespace: meta.namespace ?? 'default',
      body: {
        metadata: { generateName: `${meta.name ?? 'object'}.`, namespace: meta.namespace ?? 'default' },
        involvedObject: { apiVersion: object.apiVersion, kind: object.kind, name: meta.name, namespace: meta.namespace, uid: meta.uid, resourceVersion: meta.resourceVersion },
        type,
        reason,
        message: message.slice(0, 1024),
        source: { component: this.#component },
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
        reportingComponent: this.#component,
      },
    });
  }
}

/** What the API server said when it refused a request: the message of its Status, else the error's own. */
export function apiMessage(error: unknown): string {
  const body = (error as { body?: unknown }).body;
  let status: unknown = body;
  if (typeof body === 'string') {
    try {
      status = JSON.parse(body);
    } catch {
      status = undefined;
    }
  }
  const message = (status as { message?: unknown } | undefined)?.message;
  if (typeof message === 'string' && message !== '') return message;
  return error instanceof Error ? error.message : String(error);
}

export function statusCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'number' ? code : undefined;
}
