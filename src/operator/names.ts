import { createHash } from 'node:crypto';

/**
 * The names and label values the operator derives from a Stackerfile's name, which may be 253
 * characters long. A label value, and any name that becomes one (an ImageBuild's, whose pod
 * labels itself with it), stops at 63 characters: a name too long for its place keeps a readable
 * prefix and ends with a hash of the whole, so two long names sharing a prefix stay apart.
 */
export const labelValueLimit = 63;

/** A few hex characters of the SHA-256 of `text`. */
export function shortHash(text: string, length = 8): string {
  return createHash('sha256').update(text).digest('hex').slice(0, length);
}

/** `name` when it fits in `limit` characters, else its prefix, `-` and a hash of all of it (ends alphanumeric, as names and label values must). */
export function bounded(name: string, limit: number): string {
  if (name.length <= limit) return name;
  const hash = shortHash(name);
  return `${name.slice(0, limit - hash.length - 1).replace(/[-.]+$/, '')}-${hash}`;
}

/** A label value naming an object: its name, bounded to 63 characters. */
export function labelValue(name: string): string {
  return bounded(name, labelValueLimit);
}

/** A name derived from another by a suffix (`-build`, `-recipe`), bounded to 63 characters with the suffix kept. */
export function derivedName(name: string, suffix: string): string {
  return `${bounded(name, labelValueLimit - suffix.length)}${suffix}`;
}

/**
 * The start of every ImageBuild name of a Stackerfile: at most 40 characters, so that with the
 * longest ending (`-swap-` and a hash) and the build pod's `-build` or `-recipe` suffix, every
 * name and label stays within 63.
 */
export function imageBuildStem(stackerfile: string): string {
  return bounded(stackerfile, 40);
}
