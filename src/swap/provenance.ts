import { z } from 'zod';
import { sha256Digest } from '../oci/digest.ts';

/**
 * Where every blob layer of an image came from. Written by compose and the builder, read by swap
 * and `restack inspect`. OCI images carry it as a manifest annotation; Docker schema2 images,
 * which have no annotations, as a config label of the same name.
 */
export const provenanceKey = 'restack.dev/provenance';
export const baseNameKey = 'org.opencontainers.image.base.name';
export const baseDigestKey = 'org.opencontainers.image.base.digest';

/** A run of blob layers: `[start, start + count)` in the image's `layers`. */
const layerRange = z.object({ start: z.number().int().nonnegative(), count: z.number().int().nonnegative() });
export type LayerRange = z.infer<typeof layerRange>;

const appliedSchema = z.object({
  /** The reference as the recipe wrote it (a tag), so a newer version can be found again. */
  ref: z.string(),
  /** The manifest digest of the applied image (its platform's manifest). */
  digest: z.string(),
  layers: layerRange,
  /**
   * The applied image's own base: how many of its blob layers lie below what it contributed, and
   * the chain of their digests. A new version is swapped in only if this is unchanged.
   */
  base: z.object({ count: z.number().int().nonnegative(), chain: z.string() }),
});
export type AppliedProvenance = z.infer<typeof appliedSchema>;

export const provenanceSchema = z.object({
  version: z.literal(1),
  base: z.object({ ref: z.string(), digest: z.string(), layers: layerRange }).nullable(),
  applied: z.array(appliedSchema),
  own: z.object({ layers: layerRange }),
});
export type Provenance = z.infer<typeof provenanceSchema>;

/** Stable serialisation: keys in schema order, so equal provenance gives equal bytes. */
export function encodeProvenance(provenance: Provenance): string {
  return JSON.stringify(provenanceSchema.parse(provenance));
}

export class ProvenanceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProvenanceError';
  }
}

export function decodeProvenance(text: string, source: string): Provenance {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ProvenanceError(`${source}: the ${provenanceKey} annotation is not JSON`);
  }
  const parsed = provenanceSchema.safeParse(json);
  if (!parsed.success) {
    throw new ProvenanceError(`${source}: the ${provenanceKey} annotation is not restack provenance v1 (${parsed.error.issues[0]?.message ?? 'invalid'})`);
  }
  checkRanges(parsed.data, source);
  return parsed.data;
}

/** Ranges must tile the layer list in order: base, applied..., own. */
function checkRanges(provenance: Provenance, source: string): void {
  let next = 0;
  for (const range of [provenance.base?.layers, ...provenance.applied.map((a) => a.layers), provenance.own.layers]) {
    if (range === undefined) continue;
    if (range.start !== next) throw new ProvenanceError(`${source}: provenance ranges do not follow each other (expected a range at ${next}, found ${range.start})`);
    next = range.start + range.count;
  }
}

export function totalLayers(provenance: Provenance): number {
  return provenance.own.layers.start + provenance.own.layers.count;
}

/** An order-sensitive fingerprint of a list of layer digests (like an OCI chain ID); empty for no layers. */
export function layerChain(digests: readonly string[]): string {
  return digests.length === 0 ? '' : sha256Digest(digests.join('\n'));
}

/** Where one blob layer came from, for `restack inspect` and the operator's status. */
export type LayerOrigin =
  | { kind: 'base'; ref: string; digest: string }
  | { kind: 'apply'; ref: string; digest: string }
  | { kind: 'own' }
  | { kind: 'unknown' };

export function layerOrigins(provenance: Provenance | undefined, layerCount: number): LayerOrigin[] {
  const origins: LayerOrigin[] = Array.from({ length: layerCount }, () => ({ kind: 'unknown' }));
  if (provenance === undefined) return origins;
  const mark = (range: LayerRange, origin: LayerOrigin) => {
    for (let index = range.start; index < range.start + range.count && index < layerCount; index++) origins[index] = origin;
  };
  if (provenance.base !== null) mark(provenance.base.layers, { kind: 'base', ref: provenance.base.ref, digest: provenance.base.digest });
  for (const applied of provenance.applied) mark(applied.layers, { kind: 'apply', ref: applied.ref, digest: applied.digest });
  mark(provenance.own.layers, { kind: 'own' });
  return origins;
}

export function describeOrigin(origin: LayerOrigin): string {
  switch (origin.kind) {
    case 'base':
      return `base ${origin.ref}@${origin.digest.slice(0, 19)}`;
    case 'apply':
      return `apply ${origin.ref}@${origin.digest.slice(0, 19)}`;
    case 'own':
      return 'own';
    case 'unknown':
      return '-';
  }
}
