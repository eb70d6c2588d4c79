import { chmod, mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import type { BuildEvent, BuildOutput } from '../../src/engine/build/events.ts';
import type { OpenedReference } from '../../src/engine/images.ts';
import { open } from '../swap/seeds.ts';
import { restack } from '../cli/restack.ts';
import { busyboxLayerEntries, busyboxPath, tarBytes } from '../build/helpers.ts';
import { makeImage, makeLayer, writeImage, type LayerEntry } from '../services/images.ts';

/** A temp dir the build container's mapped root can traverse, for a suite (remove it in `after`). */
export async function suiteDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await chmod(dir, 0o755);
  return dir;
}

/** A rootfs tarball of Debian's busybox-static with its applets, for `from: {type: tar}`. */
export async function writeBusyboxTarball(path: string): Promise<void> {
  await writeFile(path, gzipSync(await tarBytes(busyboxLayerEntries(await readFile(busyboxPath)))));
}

/**
 * The same rootfs as a one-layer image in a registry or layout, for `from: {type: docker}`; `extra`
 * files make another version of it; `opener` brings credentials for a registry that needs them.
 */
export async function pushBusyboxBase(ref: string, extra: Record<string, LayerEntry> = {}, opener: (ref: string) => OpenedReference = open): Promise<string> {
  const files: Record<string, LayerEntry> = { ...extra };
  for (const entry of busyboxLayerEntries(await readFile(busyboxPath))) {
    if (entry.type === 'directory') files[entry.name] = { type: 'directory', mode: entry.mode ?? 0o755 };
    else if (entry.type === 'symlink') files[entry.name] = { type: 'symlink', target: entry.linkname as string };
    else files[entry.name] = { type: 'file', content: entry.content as Buffer, mode: entry.mode ?? 0o644 };
  }
  const target = opener(ref);
  const image = makeImage({ layers: [await makeLayer(files)] });
  return (await writeImage(target.store, target.repository, image, target.ref.tag)).digest;
}

export interface BuildRun {
  exitCode: number;
  events: BuildEvent[];
  stderr: string;
}

/** `restack build --json ARGS`, its events parsed. */
export async function build(args: string[], options: { cwd?: string; env?: Record<string, string> } = {}): Promise<BuildRun> {
  const result = await restack(['build', '--json', ...args], options);
  const events = String(result.stdout)
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => JSON.parse(line) as BuildEvent);
  return { exitCode: result.exitCode ?? 1, events, stderr: String(result.stderr) };
}

/** Fails with the build's own account of what went wrong. */
export function outputsOf(run: BuildRun): Map<string, BuildOutput> {
  const done = run.events.find((event) => event.event === 'build-done');
  if (run.exitCode !== 0 || done === undefined) throw new Error(`build failed (exit ${run.exitCode}):\n${run.stderr}\n${JSON.stringify(run.events.filter((e) => e.event === 'error'))}`);
  return new Map(done.outputs.map((output) => [output.name, output]));
}

/** A container ran iff a `run` step started. */
export function containersStarted(run: BuildRun): string[] {
  return run.events.flatMap((event) => (event.event === 'step' && event.step === 'run' ? [event.layer] : []));
}

export function errorEvent(run: BuildRun): Extract<BuildEvent, { event: 'error' }> | undefined {
  return run.events.find((event): event is Extract<BuildEvent, { event: 'error' }> => event.event === 'error');
}
