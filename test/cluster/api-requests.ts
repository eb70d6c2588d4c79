// The API server's own count of the requests it served (apiserver_request_total on its /metrics),
// so a test or bench can say how many writes something cost without a proxy in front of the API
// server. The counts are cluster-wide (no namespace label): compare them over a window in which
// only the operator writes the resources counted.
import { execa } from 'execa';
import type { Cluster } from './harness.ts';

/** Verbs that change something, as apiserver_request_total spells them. */
const writeVerbs = new Set(['POST', 'PUT', 'PATCH', 'APPLY', 'DELETE', 'DELETECOLLECTION']);

/** Requests by `VERB resource[/subresource]` (e.g. `PATCH imagebuilds/status`), summed over response codes. */
export type RequestCounts = ReadonlyMap<string, number>;

type ClusterAccess = Pick<Cluster, 'binDir' | 'kubeconfigPath'>;

/** The text of the API server's /metrics. */
export async function apiServerMetrics(cluster: ClusterAccess): Promise<string> {
  return (await execa(`${cluster.binDir}/kubectl`, ['--kubeconfig', cluster.kubeconfigPath, 'get', '--raw', '/metrics'])).stdout;
}

/** The write requests the API server has served so far for the resources of `group` ('' is the core group: events, pods...). */
export async function apiWrites(cluster: ClusterAccess, group: string): Promise<RequestCounts> {
  return writesIn(await apiServerMetrics(cluster), group);
}

/** The CPU time the API server process has used so far, in seconds, from the text of its /metrics. */
export function cpuSecondsIn(metrics: string): number {
  const seconds = metrics.match(/^process_cpu_seconds_total (\S+)$/m)?.[1];
  if (seconds === undefined) throw new Error('the API server\'s /metrics has no process_cpu_seconds_total');
  return Number(seconds);
}

/** The write requests of `group` in the text of the API server's /metrics. */
export function writesIn(metrics: string, group: string): RequestCounts {
  const counts = new Map<string, number>();
  for (const match of metrics.matchAll(/^apiserver_request_total\{([^}]*)\} (\S+)$/gm)) {
    const labels = Object.fromEntries([...(match[1] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((label) => [label[1], label[2]]));
    if (labels['group'] !== group || !writeVerbs.has(labels['verb'] ?? '')) continue;
    const key = `${labels['verb']} ${labels['resource']}${labels['subresource'] ? `/${labels['subresource']}` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + Number(match[2]));
  }
  return counts;
}

/** What was counted after `before`, without the kinds of request that did not grow. */
export function countsSince(before: RequestCounts, after: RequestCounts): Record<string, number> {
  const grown: Record<string, number> = {};
  for (const [key, value] of after) {
    const delta = value - (before.get(key) ?? 0);
    if (delta !== 0) grown[key] = delta;
  }
  return grown;
}

/** The sum of a countsSince result. */
export function total(counts: Readonly<Record<string, number>>): number {
  return Object.values(counts).reduce((sum, n) => sum + n, 0);
}
