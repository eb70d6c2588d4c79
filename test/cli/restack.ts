import { execa } from 'execa';
import { join } from 'node:path';

export const main = join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

/** Runs the real `restack` CLI in a child process, on the same Node that runs the tests. */
export function restack(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}) {
  return execa(process.execPath, [main, ...args], { reject: false, ...options });
}
