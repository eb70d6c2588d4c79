// `restack operator` as a child process, as a Deployment runs it: for tests that kill it and for
// the benchmark that measures its memory.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { eventually } from '../cluster/harness.ts';
import { freeLoopbackPort } from '../services/service.ts';

const sourceCli = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

/** The stand-in for `restack build`, as the value of `--builder`. */
export const standInBuilderCommand = `${process.execPath} ${join(import.meta.dirname, 'stand-in-builder.ts')}`;

export interface OperatorProcess {
  pid: number;
  /** Of /healthz, /readyz and /metrics, on 127.0.0.1. */
  port: number;
  /** The last 20,000 characters of its stdout and stderr (its JSON log). */
  output: () => string;
  exited: Promise<void>;
  /** Signals the whole process group: the operator and the builds it runs, as a pod's death would. */
  signal: (signal: NodeJS.Signals) => void;
  metrics: () => Promise<string>;
}

export interface OperatorProcessOptions {
  kubeconfigPath: string;
  /** After `restack operator` and its --metrics-bind-address. */
  args: readonly string[];
  env?: NodeJS.ProcessEnv;
  /** Options of node itself, e.g. --cpu-prof. */
  nodeArgs?: readonly string[];
  /** The CLI's entry point: src/cli/main.ts unless given (the bench runs the compiled dist/cli/main.js that ships). */
  cli?: string;
  /** How long its caches may take to sync before /readyz answers (120 s unless given; the bench's 10,000 Stackerfiles on a loaded machine take longer). */
  readyTimeoutMs?: number;
}

/** Starts the operator; resolves once /readyz answers 200 (its caches are synced). */
export async function startOperatorProcess(options: OperatorProcessOptions): Promise<OperatorProcess> {
  const port = await freeLoopbackPort();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.cli ?? sourceCli, 'operator', '--metrics-bind-address', `127.0.0.1:${port}`, ...options.args], {
    env: { ...process.env, ...options.env, KUBECONFIG: options.kubeconfigPath },
    // Its own process group, so signal() reaches the builder processes too.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (chunk: Buffer) => (output = (output + chunk.toString('utf8')).slice(-20_000));
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const pid = child.pid ?? 0;
  const operator: OperatorProcess = {
    pid,
    port,
    output: () => output,
    exited,
    signal: (signal) => {
      if (child.exitCode === null && child.signalCode === null) process.kill(-pid, signal);
    },
    metrics: async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text(),
  };
  await eventually(`operator ${pid} ready`, async () => ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok ? true : undefined), options.readyTimeoutMs ?? 120_000).catch((error: unknown) => {
    operator.signal('SIGKILL');
    throw new Error(`${String(error)}; its log:\n${output}`);
  });
  return operator;
}

/** The sum of a counter's samples over all its labels (0 when it has none yet). */
export function counterTotal(metricsText: string, name: string): number {
  return [...metricsText.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+(?:\\.\\d+)?)$`, 'gm'))].reduce((sum, match) => sum + Number(match[1]), 0);
}
