// Gives tests a real Kubernetes control plane: the cluster test/cluster/up starts (once per test
// process, stopped when the process exits), or the one at $RESTACK_KUBECONFIG if set.
import { spawn, execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';

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
}

const clusterSrc = dirname(fileURLToPath(import.meta.url));
let running: Promise<Cluster> | undefined;

/** The cluster of this test process, started on first use; warm starts take seconds. */
export function useCluster(): Promise<Cluster> {
  running ??= start();
  return running;
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
