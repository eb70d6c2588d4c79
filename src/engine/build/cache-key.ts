import { sha256Digest } from '../../oci/digest.ts';
import type { Platform } from '../../oci/types.ts';
import type { Layer } from '../../stackerfile/schema.ts';

/** Bump when what a cache entry holds, or how a layer is made from the same inputs, changes. */
export const cacheFormat = 1;

/** Everything that decides a layer's own blob layers and generated labels. */
export interface CacheKeyInput {
  /** The parsed layer, after substitution. */
  definition: Layer;
  /** The base's manifest digest, the tarball's sha256, or null for scratch. */
  base: { digest: string } | { tarball: string } | null;
  /** Manifest digests of the applied images, in order. */
  applied: readonly string[];
  /** Content hashes of the imports, in recipe order. */
  imports: readonly string[];
  sourceDateEpoch: number | undefined;
  layerType: string;
  platform: Platform;
}

/** JSON with object keys sorted at every level: the same value always gives the same text. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item === undefined ? null : item)).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** The cache key of a layer: unchanged inputs give the same key, so the build reuses its layers without a container. */
export function layerCacheKey(input: CacheKeyInput): string {
  return sha256Digest(canonicalJson({ format: cacheFormat, ...input, sourceDateEpoch: input.sourceDateEpoch ?? null }));
}
