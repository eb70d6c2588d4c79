// Gives tests a real Kubernetes control plane: the cluster test/cluster/up starts (once per test
// process, stopped when the process exits), or the one at $RESTACK_KUBECONFIG if set.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { SkipError } from '../services/service.ts';

export interface Cluster {
  /** Authenticated as `admin` in the group system:masters. */
  kubeConfig: KubeConfig;
  kubeconfigPath: string;
  /** Authenticated as the service account default/restricted, which no role is bound to. */
  restrictedKubeconfigPath: string;
  /** kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, kwok and helm. */
  binDir: string;
  /** Stops a cluster this process started (a no-op for $RESTACK_KUBECONFIG's). */
  stop(): Promise<void>;
  /** The real node (node-up), when the cluster has one. */
  node?: RealNode;
}

/** A kubelet with containerd and runc on this machine (test/cluster/node-up), node/env in the cluster's directory. */
export interface RealNode {
  /** The Node's name; it carries the label restack.test/node=real, and the kwok node is tainted while it runs. */
  name: string;
  /** The pods' subnet: a bridge on this machine, reachable from here and from pods, nothing else. */
  subnet: string;
  /** This machine's address on the bridge. */
  address: string;
  /** Images imported into the node's containerd (never pulled: use them with imagePullPolicy Never or IfNotPresent). */
  builderImage: string;
  registryImage: string;
  pauseImage: string;
  /** The Localhost seccomp profile installed under the kubelet's seccomp directory. */
  seccompProfile: string;
}

const clusterSrc = dirname(fileURLToPath(import.meta.url));
let running: Promise<Cluster> | undefined;
let withNode: Promise<Cluster> | undefined;

/**
 * The cluster of this test process, started on first use; warm starts take seconds. With
 * `realNode`, it also has a real node (containerd, runc, a kubelet: about 15 s more when built);
 * throws SkipError (see startOrSkip) only when this machine cannot run one.
 */
export function useCluster(options: { realNode?: boolean } = {}): Promise<Cluster> {
  running ??= start();
  if (options.realNode !== true) return running;
  withNode ??= running.then(addRealNode);
  return withNode;
}

/** Why this machine cannot run a real node, if it cannot: what node-up needs and no install provides. */
function realNodeMissing(): string | undefined {
  if (process.getuid?.() !== 0) return 'a real node needs root (containerd, runc, mounts, cgroups); run the tests as root';
  const number = (path: string) => (existsSync(path) ? Number(readFileSync(path, 'utf8')) : 0);
  if (number('/proc/sys/user/max_user_namespaces') === 0) return 'user namespaces are disabled (/proc/sys/user/max_user_namespaces is 0): build pods run with hostUsers: false';
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay\n')) return 'the kernel has no overlayfs (containerd\'s snapshotter and the builder need it)';
  if (!existsSync('/sys/fs/cgroup/cpu') && !existsSync('/sys/fs/cgroup/cgroup.controllers')) return 'no cgroup filesystem under /sys/fs/cgroup (the kubelet needs one)';
  return undefined;
}

async function addRealNode(cluster: Cluster): Promise<Cluster> {
  const missing = realNodeMissing();
  if (missing !== undefined) throw new SkipError(missing);
  const envFile = join(dirname(cluster.kubeconfigPath), 'node', 'env');
  if (process.env['RESTACK_KUBECONFIG'] === undefined || process.env['RESTACK_KUBECONFIG'] === '') {
    await runScript('node-up', { ...process.env, RESTACK_CLUSTER_DIR: dirname(cluster.kubeconfigPath) });
  } else if (!existsSync(envFile)) {
    throw new Error(`RESTACK_KUBECONFIG=${cluster.kubeconfigPath}: its cluster has no real node; start one with RESTACK_CLUSTER_DIR=${dirname(cluster.kubeconfigPath)} test/cluster/node-up`);
  }
  const env = Object.fromEntries(
    readFileSync(envFile, 'utf8')
      .split('\n')
      .filter((line) => line.includes('='))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
  const field = (name: string): string => {
    const value = env[name];
    if (value === undefined) throw new Error(`${envFile} has no ${name}: written by an older node-up? Restart the node`);
    return value;
  };
  const node: RealNode = {
    name: field('NODE_NAME'),
    subnet: field('NODE_SUBNET'),
    address: field('NODE_ADDRESS'),
    builderImage: field('BUILDER_IMAGE'),
    registryImage: field('REGISTRY_IMAGE'),
    pauseImage: field('PAUSE_IMAGE'),
    seccompProfile: field('SECCOMP_PROFILE'),
  };
  return { ...cluster, node };
}

async function start(): Promise<Cluster> {
  // Builds the binaries on a cold cache and fails, saying what to install, without Go.
  const binDir = await runScript('install.sh', process.env);
  const reused = process.env['RESTACK_KUBECONFIG'];
  if (reused !== undefined && reused !== '') {
    return connect(reused, binDir, async () => {});
  }

  const env = {
    ...process.env,
    RESTACK_CLUSTER_DIR: join(existsSync('/dev/shm') ? '/dev/shm' : tmpdir(), `restack-cluster-test-${process.pid}`),
    // If this process dies without its exit handler (SIGKILL), up's watchdog still stops the cluster.
    RESTACK_CLUSTER_OWNER_PID: String(process.pid),
  };
  const stopOnExit = (): void => {
    execFileSync(join(clusterSrc, 'down'), { env, stdio: 'ignore' });
  };
  process.once('exit', stopOnExit);
  const kubeconfigPath = await runScript('up', env);
  let stopping: Promise<void> | undefined;
  return connect(kubeconfigPath, binDir, () => {
    stopping ??= (async () => {
      process.off('exit', stopOnExit);
      running = undefined;
      withNode = undefined;
      await runScript('down', env);
    })();
    return stopping;
  });
}

function connect(kubeconfigPath: string, binDir: string, stop: () => Promise<void>): Cluster {
  const restrictedKubeconfigPath = join(dirname(kubeconfigPath), 'restricted.kubeconfig');
  if (!existsSync(restrictedKubeconfigPath)) {
    throw new Error(
      `RESTACK_KUBECONFIG=${kubeconfigPath}: no restricted.kubeconfig next to it; ` +
        'point it at a kubeconfig written by test/cluster/up, or unset it to start a cluster per test process',
    );
  }
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  return { kubeConfig, kubeconfigPath, restrictedKubeconfigPath, binDir, stop };
}

/** Runs a script of this directory; resolves to its stdout's last line (its result, if any). */
function runScript(name: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(join(clusterSrc, name), { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) {
        resolve(stdout.trim().split('\n').at(-1) ?? '');
        return;
      }
      const stderrTail = stderr.trim().split('\n').slice(-40).join('\n');
      reject(new Error(`test/cluster/${name} failed (${signal ?? `exit code ${code}`}):\n${stderrTail}`));
    });
  });
}

/** Asks `probe` until it answers (a value, not undefined or an error): the API server settles new kinds and policies a moment later. */
export async function eventually<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}
