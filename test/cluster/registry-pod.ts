// A registry for build pods on the real node: Debian's docker-registry as a pod there (the image
// node-up imported), reachable at its pod address from the other pods and from this machine.
import { CoreV1Api } from '@kubernetes/client-node';
import { eventually, type Cluster, type RealNode } from './harness.ts';

export interface RegistryPod {
  /** `ADDRESS:5000`, as in image references (plain http: use the insecure options). */
  host: string;
  url: string;
  /** Deletes the registry's namespace, its pod and its storage with it. */
  stop(): Promise<void>;
}

export async function startRegistryPod(cluster: Cluster & { node: RealNode }, namespace: string): Promise<RegistryPod> {
  const core = cluster.kubeConfig.makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
  await eventually(`service account ${namespace}/default`, () => core.readNamespacedServiceAccount({ namespace, name: 'default' }));
  await core.createNamespacedPod({
    namespace,
    body: {
      metadata: { name: 'registry', labels: { app: 'registry' } },
      spec: {
        nodeSelector: { 'kubernetes.io/hostname': cluster.node.name },
        automountServiceAccountToken: false,
        containers: [
          {
            name: 'registry',
            image: cluster.node.registryImage,
            imagePullPolicy: 'Never',
            ports: [{ containerPort: 5000 }],
            volumeMounts: [{ name: 'data', mountPath: '/var/lib/registry' }],
          },
        ],
        volumes: [{ name: 'data', emptyDir: {} }],
      },
    },
  });
  const address = await eventually(
    `the registry pod ${namespace}/registry Running with an address`,
    async () => {
      const pod = await core.readNamespacedPod({ namespace, name: 'registry' });
      return pod.status?.phase === 'Running' ? pod.status.podIP : undefined;
    },
    60_000,
  );
  const host = `${address}:5000`;
  const url = `http://${host}`;
  await eventually(`${url}/v2/ answering`, async () => ((await fetch(`${url}/v2/`, { signal: AbortSignal.timeout(2000) })).ok ? true : undefined));
  return { host, url, stop: async () => void (await core.deleteNamespace({ name: namespace })) };
}
