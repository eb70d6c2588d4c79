import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import { KubeConfig } from '@kubernetes/client-node';
import { reuseConnections } from '../operator/kube-connections.ts';
import { UserError } from './errors.ts';

/** Where a pod's service account token is mounted: client-node's in-cluster configuration reads it. */
const serviceAccountToken = '/var/run/secrets/kubernetes.io/serviceaccount/token';

const fix = 'set KUBECONFIG to a kubeconfig file (as for kubectl), write ~/.kube/config, or run restack in a pod with a service account';

/**
 * The cluster as kubectl finds it (KUBECONFIG, ~/.kube/config, the pod's service account), with
 * pooled connections. client-node falls back to http://localhost:8080 when it finds none, and the
 * operator then retries that forever; an unreadable KUBECONFIG file is a stack trace. Both are
 * refused here, naming what was looked at.
 */
export function loadKubeConfig(): KubeConfig {
  const files = (process.env['KUBECONFIG'] ?? '').split(delimiter).filter((file) => file !== '');
  const defaultFile = join(homedir(), '.kube', 'config');
  const source = files.length > 0 ? `KUBECONFIG=${process.env['KUBECONFIG'] ?? ''}` : existsSync(defaultFile) ? defaultFile : existsSync(serviceAccountToken) ? 'the pod\'s service account' : undefined;
  if (source === undefined) throw new UserError(`no kubeconfig: KUBECONFIG is not set, ${defaultFile} does not exist and this is not a pod with a service account`, fix);
  const kubeConfig = new KubeConfig();
  try {
    kubeConfig.loadFromDefault();
  } catch (error) {
    throw new UserError(`cannot load the kubeconfig from ${source}: ${error instanceof Error ? error.message : String(error)}`, fix);
  }
  if (kubeConfig.getCurrentCluster() === null) {
    const context = kubeConfig.getCurrentContext() as string | undefined;
    const what = context ? `no cluster for its current context "${context}"` : 'no current context';
    throw new UserError(`the kubeconfig from ${source} has ${what}`, 'choose a context that names a cluster: kubectl config use-context NAME');
  }
  return reuseConnections(kubeConfig);
}
