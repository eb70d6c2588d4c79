import { isDeepStrictEqual } from 'node:util';
import { readStoredImage } from '../engine/images.ts';
import { pushReference } from '../engine/build.ts';
import { OciError } from '../oci/errors.ts';
import { baseReference, planRecipes, type Plan } from '../stackerfile/plan.ts';
import { isLayerName } from '../stackerfile/parse.ts';
import type { Provenance } from '../swap/provenance.ts';
import { readProvenance } from '../swap/image.ts';
import type { BuildOutput, BuildRequest, BuildResult } from './executor.ts';
import { validateRecipe } from './recipe-source.ts';
import type { Opener } from './output-registry.ts';
import { pinned } from './swap-runner.ts';

type Input = NonNullable<BuildOutput['inputs']>[number];

/** What a build of the recipe publishes for one layer, and the inputs its provenance must name. */
export interface ExpectedOutput {
  name: string;
  /** Where the first tag puts it: `<registry>/<name>:<tag>`. */
  ref: string;
  /** The reference provenance must name as the base; null for scratch and tar bases, which leave none. */
  base: string | null;
  /** The references of the applied inputs, in order. */
  applied: string[];
}

/** An earlier layer of the recipe as the builder names it in provenance: where it is published, or (build_only) its ref in the build's layout. */
function layerInput(plan: Plan, name: string, prefix: string, tag: string, layout: string): string {
  return plan.layers.find((layer) => layer.name === name)?.buildOnly === false ? pushReference(prefix, name, tag) : `oci:${layout}:${name}`;
}

/**
 * The outputs a build of `plan` publishes to `registry`, by layer name (build_only layers are not
 * published); `layout` is the build's output layout, where build_only layers stay.
 */
export function expectedOutputs(plan: Plan, registry: string, tags: readonly string[], layout: string): Map<string, ExpectedOutput> {
  const prefix = `docker://${registry}`;
  const tag = tags[0] ?? 'latest';
  const input = (entry: string): string => (isLayerName(entry) ? layerInput(plan, entry, prefix, tag, layout) : entry);
  const outputs = new Map<string, ExpectedOutput>();
  for (const layer of plan.layers) {
    if (layer.buildOnly) continue;
    const { from } = layer;
    const base = from.type === 'built' ? layerInput(plan, from.tag ?? '', prefix, tag, layout) : from.type === 'docker' || from.type === 'oci' ? (baseReference(from) ?? '') : null;
    outputs.set(layer.name, { name: layer.name, ref: pushReference(registry, layer.name, tag), base, applied: layer.apply.map(input) });
  }
  return outputs;
}

/** Where an image's provenance departs from the recipe's inputs for its layer; undefined when it names exactly them. */
export function provenanceProblem(expected: ExpectedOutput, provenance: Provenance | undefined): string | undefined {
  if (provenance === undefined) return 'the image has no restack provenance';
  const base = provenance.base?.ref ?? null;
  if (base !== expected.base) return `its provenance names the base ${base ?? 'none'}, the recipe's is ${expected.base ?? 'none'}`;
  const applied = provenance.applied.map((entry) => entry.ref);
  if (!isDeepStrictEqual(applied, expected.applied)) return `its provenance names the applied inputs [${applied.join(', ')}], the recipe's are [${expected.applied.join(', ')}]`;
  return undefined;
}

/** The inputs an image was made from, as its provenance records them. */
export function provenanceInputs(provenance: Provenance): Input[] {
  return [
    ...(provenance.base === null ? [] : [{ ref: provenance.base.ref, role: 'from' as const, digest: provenance.base.digest }]),
    ...provenance.applied.map((entry) => ({ ref: entry.ref, role: 'apply' as const, digest: entry.digest })),
  ];
}

/** A manifest that is not there is the build's word against the registry's; any other error is the registry's, and retried. */
async function digestAt(open: Opener, ref: string): Promise<string | undefined> {
  const opened = open(`docker://${ref}`);
  try {
    return (await opened.store.resolve(opened.repository, opened.reference)).digest;
  } catch (error) {
    if (error instanceof OciError && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN')) return undefined;
    throw error;
  }
}

/** What is wrong with one reported output, or the output as the registry shows it. */
async function verifyOutput(output: BuildOutput, expected: ExpectedOutput | undefined, request: BuildRequest, open: Opener): Promise<{ problem: string } | { output: BuildOutput }> {
  const { registry, tags } = request;
  if (expected === undefined) return { problem: `it is not a published layer of the recipe` };
  if (output.ref !== expected.ref) return { problem: `its ref ${output.ref} is not where the build publishes it: ${expected.ref}, under spec.output.registry ${registry}` };
  for (const tag of tags.length === 0 ? ['latest'] : tags) {
    const ref = pushReference(registry, output.name, tag);
    const found = await digestAt(open, ref);
    if (found !== output.digest) return { problem: found === undefined ? `there is no manifest at ${ref}` : `${ref} holds ${found}, not the reported ${output.digest}` };
  }
  const image = await readStoredImage(open(pinned(`docker://${expected.ref}`, output.digest)));
  let inputs: Input[] | undefined;
  for (const platform of image.platforms) {
    const provenance = readProvenance(platform.image, `${expected.ref}@${platform.image.digest}`);
    const problem = provenanceProblem(expected, provenance);
    if (problem !== undefined || provenance === undefined) return { problem: problem ?? 'the image has no restack provenance' };
    inputs ??= provenanceInputs(provenance);
  }
  if (output.inputs !== undefined && !isDeepStrictEqual(output.inputs, inputs)) {
    return { problem: `the reported inputs differ from the image's provenance (${(inputs ?? []).map((input) => `${input.ref}@${input.digest}`).join(', ')})` };
  }
  return { output: { name: output.name, ref: expected.ref, digest: output.digest, ...(inputs === undefined ? {} : { inputs }) } };
}

/**
 * Checks a build's reported outputs against the registry before they are recorded: there is one
 * for every published layer of the recipe, each is a published layer of the recipe, at the ref its spec.output.registry and first tag give, every tag
 * holds the reported digest, and the image's provenance names exactly the recipe's inputs for
 * that layer. The result records the inputs as the image's provenance says, not as reported.
 */
export async function verifyBuildOutputs(request: BuildRequest, outputs: readonly BuildOutput[], open: Opener, layout: string): Promise<BuildResult> {
  const loaded = await validateRecipe(request.recipe, 'stacker.yaml', request.substitutions);
  if (!loaded.ok) return { ok: false, message: 'the recipe no longer validates; the build\'s result is not recorded' };
  const expected = expectedOutputs(planRecipes(loaded.recipes), request.registry, request.tags, layout);
  const verified: BuildOutput[] = [];
  for (const output of outputs) {
    const checked = await verifyOutput(output, expected.get(output.name), request, open);
    if ('problem' in checked) {
      return { ok: false, message: `the build reported output ${output.name} (${output.digest}), but ${checked.problem}; nothing is recorded` };
    }
    verified.push(checked.output);
  }
  // The builder never leaves an output out of its result (a result too large is an error): a missing one is a forgery.
  const missing = [...expected.keys()].filter((name) => !outputs.some((output) => output.name === name));
  if (missing.length > 0) return { ok: false, message: `the build reported no output for ${missing.join(', ')}, which the recipe publishes; nothing is recorded` };
  return { ok: true, outputs: verified };
}
