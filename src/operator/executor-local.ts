import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';

export interface BuildRequest {
  recipe: string;
  registry: string;
  tags: string[];
  substitutions: Record<string, string>;
}

export interface BuildOutput {
  name: string;
  ref: string;
  digest: string;
}

export type BuildResult = { ok: true; outputs: BuildOutput[] } | { ok: false; message: string };

/**
 * Runs `restack build --json` as a child process on this machine. The command prints one JSON
 * event a line; the last is {event: 'build-done', outputs} or {event: 'error', message}.
 */
export class LocalExecutor {
  /** argv before `build`'s arguments, e.g. [node, src/cli/main.ts, 'build']. */
  readonly #command: readonly string[];

  constructor(command: readonly string[]) {
    if (command.length === 0) throw new Error('the builder command is empty; give the restack build command line');
    this.#command = command;
  }

  async run(request: BuildRequest): Promise<BuildResult> {
    const dir = await mkdtemp(join(tmpdir(), 'restack-build-'));
    try {
      const file = join(dir, 'stacker.yaml');
      await writeFile(file, request.recipe);
      const args = [
        ...this.#command.slice(1),
        '-f', file,
        '--push', `docker://${request.registry}`,
        ...request.tags.flatMap((tag) => ['--tag', tag]),
        ...Object.entries(request.substitutions).flatMap(([key, value]) => ['--substitute', `${key}=${value}`]),
        '--json',
      ];
      return await this.#spawn(this.#command[0] as string, args, dir, request);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  #spawn(command: string, args: string[], cwd: string, request: BuildRequest): Promise<BuildResult> {
    return new Promise((resolve) => {
      const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
      const tail: string[] = [];
      const remember = (line: string) => {
        tail.push(line);
        if (tail.length > 20) tail.shift();
      };
      let last: { event?: string; message?: string; step?: string; outputs?: { name: string; digest: string; ref?: string }[] } | undefined;
      createInterface({ input: child.stdout }).on('line', (line) => {
        try {
          last = JSON.parse(line) as typeof last;
          if (last?.event !== 'build-done') remember(line);
        } catch {
          remember(line);
        }
      });
      createInterface({ input: child.stderr }).on('line', remember);
      child.once('error', (error) => resolve({ ok: false, message: `cannot run the builder ${command}: ${error.message}` }));
      child.once('close', (code, signal) => {
        if (code === 0 && last?.event === 'build-done') {
          const tag = request.tags[0] ?? 'latest';
          const outputs = (last.outputs ?? []).map((o) => ({ name: o.name, digest: o.digest, ref: o.ref ?? `${request.registry}/${o.name}:${tag}` }));
          resolve({ ok: true, outputs });
          return;
        }
        const why = last?.event === 'error' ? (last.message ?? 'error') : `the builder exited with ${signal ?? `code ${code}`} without a build-done event`;
        resolve({ ok: false, message: `${last?.step === undefined ? '' : `step ${last.step}: `}${why}\n${tail.join('\n')}`.trim() });
      });
    });
  }
}
