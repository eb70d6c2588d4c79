import { spawn, type ChildProcess } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A service a test needs cannot run on this machine (its program is not installed). */
export class SkipError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SkipError';
  }
}

/**
 * Starts a service for a test file: `{ service }`, or `{ skip: reason }` when it truly cannot run
 * here (pass `skip` to `describe(..., { skip })`). Any other failure is thrown.
 */
export async function startOrSkip<T>(start: () => Promise<T>): Promise<{ service?: T; skip?: string }> {
  try {
    return { service: await start() };
  } catch (error) {
    if (error instanceof SkipError) return { skip: error.message };
    throw error;
  }
}

/** Throws SkipError unless an executable is on PATH; returns its full path. */
export async function requireProgram(name: string, apt: string): Promise<string> {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    const candidate = join(dir, name);
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  throw new SkipError(`${name} is not installed (apt-get install ${apt})`);
}

export async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** A child process whose output is kept for error messages. */
export interface ChildService {
  process: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  stop: () => Promise<void>;
}

export function spawnService(program: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildService {
  const child = spawn(program, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-20_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return {
    process: child,
    output: () => output,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Polls until `ready()` holds; fails early with the service's output when it exits. */
export async function waitUntilReady(name: string, service: ChildService, ready: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  let exitCode: number | null | undefined;
  void service.exited.then((code) => (exitCode = code));
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (exitCode !== undefined) throw new Error(`${name} exited with ${exitCode}:\n${service.output()}`);
    if (await ready().catch(() => false)) return;
    await sleep(50);
  }
  await service.stop();
  throw new Error(`${name} did not become ready within ${timeoutMs} ms:\n${service.output()}`);
}
