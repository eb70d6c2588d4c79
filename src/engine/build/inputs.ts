import { baseReference, type PlannedLayer } from '../../stackerfile/plan.ts';
import { isLayerName } from '../../stackerfile/parse.ts';
import type { Platform } from '../../oci/types.ts';
import { defaultPlatform, readPlatformImage } from '../compose.ts';
import type { OpenedReference, PlatformImage } from '../images.ts';
import { LayerBuildError } from './errors.ts';
import { importSource, type ImportSpec } from './import-plan.ts';
import type { AcquiredImport } from './imports.ts';

/** An input image, read at one digest for the layer's platform. */
export interface ResolvedInput {
  /** The reference provenance records for it. */
  ref: string;
  opened: OpenedReference;
  image: PlatformImage;
}

export interface LayerInputs {
  base: ResolvedInput | null;
  /** A `from: tar` rootfs tarball, which becomes the first own layer. */
  tarball: AcquiredImport | undefined;
  applied: ResolvedInput[];
  platform: Platform;
}

export interface InputContext {
  open: (ref: string, insecure: boolean) => OpenedReference;
  /** An earlier layer of the build: its image in the output layout, and the reference provenance names it by. */
  recipeLayer: (name: string) => { opened: OpenedReference; ref: string };
  acquire: (spec: ImportSpec) => Promise<AcquiredImport>;
  recipeDir: string;
}

/** The platform the recipe asks for; undefined lets the base decide. */
export function wantedPlatform(planned: PlannedLayer): Platform | undefined {
  const { os, arch } = planned.definition;
  if (os === undefined && arch === undefined) return undefined;
  return { os: os ?? defaultPlatform.os, architecture: arch ?? defaultPlatform.architecture };
}

async function read(ref: string, opened: OpenedReference, platform: Platform | undefined): Promise<ResolvedInput> {
  return { ref, opened, image: await readPlatformImage(opened, platform) };
}

/** Reads the base and applied images at their current digests, and fetches a tar base. */
export async function resolveInputs(planned: PlannedLayer, context: InputContext): Promise<LayerInputs> {
  const wanted = wantedPlatform(planned);
  const { from } = planned;
  let base: ResolvedInput | null = null;
  let tarball: AcquiredImport | undefined;
  if (from.type === 'built') {
    const earlier = context.recipeLayer(from.tag as string);
    base = await read(earlier.ref, earlier.opened, wanted);
  } else if (from.type === 'docker' || from.type === 'oci') {
    const ref = baseReference(from) as string;
    base = await read(ref, context.open(ref, from.insecure === true), wanted);
  } else if (from.type === 'tar') {
    const written = from.url as string;
    tarball = await context.acquire({ field: 'from.url', written, source: importSource(written, context.recipeDir) });
    if (tarball.isDirectory) {
      throw new LayerBuildError('BASE_INVALID', planned.name, `layer ${planned.name}: from.url "${written}" is a directory, not a rootfs tarball`, 'pack it first: tar -C DIR -czf rootfs.tar.gz .');
    }
  }
  const platform = wanted ?? base?.image.platform ?? defaultPlatform;
  const applied: ResolvedInput[] = [];
  for (const entry of planned.apply) {
    if (isLayerName(entry)) {
      const earlier = context.recipeLayer(entry);
      applied.push(await read(earlier.ref, earlier.opened, platform));
    } else {
      applied.push(await read(entry, context.open(entry, false), platform));
    }
  }
  return { base, tarball, applied, platform };
}
