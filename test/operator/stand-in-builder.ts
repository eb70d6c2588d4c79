// TEST DOUBLE for the builder process (`restack build --json`, the contract of
// src/operator/executor-local.ts): prints its JSON lines, ending with one build-done that has an
// output per layer of the recipe given with -f. Run it as `node stand-in-builder.ts`.
// Environment, passed by the operator that runs it (--builder-env):
//   RESTACK_STAND_IN_LOG       append a JSON line per run (start, each layer built, done) to this
//                              file, with the operator's pid, so a test sees who built what
//   RESTACK_STAND_IN_LAYER_MS  how long each layer takes, so a test can kill the operator mid-build
import { appendFileSync, readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { parse } from 'yaml';
import type { BuildEvent, BuildOutput } from '../../src/engine/build/events.ts';
import type { Provenance } from '../../src/swap/provenance.ts';

/** One line of RESTACK_STAND_IN_LOG. */
export interface StandInRecord {
  event: 'start' | 'layer' | 'done';
  /** The pid of the operator that ran this build. */
  operator: number;
  /** The --push target: one per Stackerfile (its spec.output.registry). */
  push: string;
  layer?: string;
}

const args = process.argv.slice(2);
const option = (name: string) => {
  const index = args.indexOf(name);
  return index < 0 ? undefined : args[index + 1];
};
const recipeFile = option('-f');
const push = option('--push') ?? '';
if (recipeFile === undefined) throw new Error(`stand-in builder: no -f FILE in ${args.join(' ')}`);
const layers = Object.keys(parse(readFileSync(recipeFile, 'utf8')) as object).filter((key) => key !== 'config');
const log = process.env['RESTACK_STAND_IN_LOG'];
const record = (entry: Omit<StandInRecord, 'operator' | 'push'>) => {
  if (log !== undefined) appendFileSync(log, `${JSON.stringify({ ...entry, operator: process.ppid, push })}\n`);
};
const layerMs = Number(process.env['RESTACK_STAND_IN_LAYER_MS'] ?? 0);

console.log(JSON.stringify({ event: 'build-start', args }));
record({ event: 'start' });
for (const layer of layers) {
  await sleep(layerMs);
  record({ event: 'layer', layer });
}
const outputs = layers.map((name): BuildOutput => {
  const digest = `sha256:${createHash('sha256').update(`${push}/${name}`).digest('hex')}`;
  const provenance: Provenance = { version: 1, base: null, applied: [], own: { layers: { start: 0, count: 1 } } };
  return { name, ref: `oci:oci:${name}`, digest, buildOnly: false, cached: false, provenance, pushed: [`${push}/${name.toLowerCase()}:latest@${digest}`] };
});
record({ event: 'done' });
const done: BuildEvent = { event: 'build-done', outputs, elapsedMs: layerMs * layers.length };
console.log(JSON.stringify(done));
