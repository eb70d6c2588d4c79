// A cluster set up as docs/install.md says for pod builds: the operator's namespace and RBAC
// (config/manager/namespace.yaml, config/rbac), the admission policy with its parameters
// (config/admission), and build namespaces at the privileged level with the policy's label.
import { join } from 'node:path';
import { execa } from 'execa';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { buildPodDefaultsSchema, type BuildPolicy } from '../../src/operator/build-policy.ts';
import type { Cluster } from '../cluster/harness.ts';

const root = join(import.meta.dirname, '..', '..');

/** The operator's user name in config/rbac and in the policy's parameters (config/admission/build-pods-binding.yaml). */
export const operatorUser = 'system:serviceaccount:restack-system:restack-operator';
/** The builder image of config/manager/deployment.yaml, the one the policy's parameters allow. */
export const configuredBuilderImage = 'registry.example/restack/builder:0.1.0';

/** Applies config/manager/namespace.yaml, config/rbac and config/admission; creates each build namespace. */
export async function setUpPodBuilds(cluster: Cluster, buildNamespaces: readonly string[]): Promise<void> {
  const kubectl = (args: string[]) => execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, ...args]);
  await kubectl(['apply', '-f', join(root, 'config', 'manager', 'namespace.yaml')]);
  await kubectl(['apply', '-k', join(root, 'config', 'rbac')]);
  await kubectl(['apply', '-k', join(root, 'config', 'admission')]);
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  for (const name of buildNamespaces) {
    await core.createNamespace({ body: { metadata: { name, labels: { 'pod-security.kubernetes.io/enforce': 'privileged', 'restack.dev/builds': 'true' } } } });
  }
}

/** The admin's kubeconfig, impersonating `user` (RBAC and admission see that user, as if it had logged in). */
export function impersonating(cluster: Cluster, user: string): KubeConfig {
  const admin = cluster.kubeConfig;
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: admin.clusters,
    contexts: admin.contexts,
    currentContext: admin.currentContext,
    users: admin.users.map((entry) => (entry.name === admin.getCurrentUser()?.name ? { ...entry, impersonateUser: user } : entry)),
  });
  return kubeConfig;
}

/** Sets the admission policy's parameters (config/admission/build-pods-binding.yaml) to allow these builder images only. */
export async function allowBuilderImages(cluster: Cluster, images: readonly string[]): Promise<void> {
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  const { metadata, data } = await core.readNamespacedConfigMap({ namespace: 'restack-system', name: 'restack-build-pods' });
  await core.replaceNamespacedConfigMap({ namespace: 'restack-system', name: 'restack-build-pods', body: { metadata: { name: 'restack-build-pods', namespace: 'restack-system', ...(metadata?.labels === undefined ? {} : { labels: metadata.labels }) }, data: { ...data, builderImages: images.join(',') } } });
}

/** The operator's build policy with one builder image and the default build-pod settings, as `restack operator --builder-image IMAGE` has it. */
export function podBuildPolicy(builderImage: string): BuildPolicy {
  return { builderImage, allowedBuilderImages: [], defaults: buildPodDefaultsSchema.parse({}) };
}
