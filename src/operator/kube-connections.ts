import type { KubeConfig } from '@kubernetes/client-node';

interface DispatcherFactory {
  createDispatcher(cluster: { server?: string } | null, agentOptions: { ca?: unknown; cert?: unknown; key?: unknown }): unknown;
}

/**
 * client-node 2.0 makes a new undici Agent for every API request (applySecurityAuthentication
 * calls createDispatcher each time), so no connection is ever reused: each request pays a TLS
 * handshake and leaves its own idle connection behind. Over 2,000 Stackerfiles that was 5x the
 * time and 2.5x the memory (bench/operator.ts). This keeps one dispatcher per server and client
 * identity, so the client pools connections as client-go does; a rotated client certificate
 * gets a new one.
 */
export function reuseConnections(kubeConfig: KubeConfig): KubeConfig {
  const factory = kubeConfig as unknown as DispatcherFactory;
  if (typeof factory.createDispatcher !== 'function') {
    throw new Error('@kubernetes/client-node has no KubeConfig.createDispatcher any more: review src/operator/kube-connections.ts against the new version');
  }
  const create = factory.createDispatcher.bind(kubeConfig);
  const dispatchers = new Map<string, unknown>();
  factory.createDispatcher = (cluster, agentOptions) => {
    const key = JSON.stringify([cluster?.server, String(agentOptions.ca), String(agentOptions.cert), String(agentOptions.key)]);
    if (!dispatchers.has(key)) dispatchers.set(key, create(cluster, agentOptions));
    return dispatchers.get(key);
  };
  return kubeConfig;
}
