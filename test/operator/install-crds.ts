import { join } from 'node:path';
import { execa } from 'execa';
import { ApiextensionsV1Api } from '@kubernetes/client-node';
import { eventually, type Cluster } from '../cluster/harness.ts';

const crdsDir = join(import.meta.dirname, '..', '..', 'crds');

/** `kubectl apply -f crds/`, then waits until the API server serves both kinds. */
export async function installCrds(cluster: Cluster): Promise<void> {
  await execa(join(cluster.binDir, 'kubectl'), ['--kubeconfig', cluster.kubeconfigPath, 'apply', '-f', crdsDir]);
  const crds = cluster.kubeConfig.makeApiClient(ApiextensionsV1Api);
  for (const name of ['stackerfiles.restack.dev', 'imagebuilds.restack.dev']) {
    await eventually(`${name} Established`, async () => (await crds.readCustomResourceDefinition({ name })).status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') || undefined);
  }
}
