import { isAbsolute, posix } from 'node:path';
import { formatPath, type Diagnostic } from './diagnostics.ts';
import type { Recipe } from './parse.ts';
import type { Layer } from './schema.ts';

/**
 * Where a layer names something on the build machine: a local path (imports, overlay_dirs, binds,
 * a tar base) or an OCI layout directory (`oci:` bases and applies).
 */
export interface HostPathUse {
  /** The field path: [layer, 'imports', 0]. */
  path: (string | number)[];
  written: string;
  kind: 'path' | 'layout';
}

const fetched = (written: string) => /^https?:\/\//.test(written) || written.startsWith('stacker://');

function importUses(name: string, layer: Layer): HostPathUse[] {
  return (['imports', 'import'] as const).flatMap((field) => {
    const raw = layer[field];
    if (raw === undefined || raw === null) return [];
    if (typeof raw === 'string') return fetched(raw) ? [] : [{ path: [name, field], written: raw, kind: 'path' as const }];
    return raw.flatMap((entry, index) => {
      const written = typeof entry === 'string' ? entry : entry.path;
      return fetched(written) ? [] : [{ path: typeof entry === 'string' ? [name, field, index] : [name, field, index, 'path'], written, kind: 'path' as const }];
    });
  });
}

/** Every host path and layout a layer reads, in field order. */
export function hostPathUses(name: string, layer: Layer): HostPathUse[] {
  const uses = importUses(name, layer);
  (layer.overlay_dirs ?? []).forEach((overlay, index) => uses.push({ path: [name, 'overlay_dirs', index, 'source'], written: overlay.source, kind: 'path' }));
  (layer.binds ?? []).forEach((bind, index) =>
    uses.push(
      typeof bind === 'string'
        ? { path: [name, 'binds', index], written: bind.trim().split(/\s+/)[0] ?? '', kind: 'path' }
        : { path: [name, 'binds', index, 'source'], written: bind.source, kind: 'path' },
    ),
  );
  const { from } = layer;
  if (from.url !== undefined && from.type === 'tar' && !fetched(from.url)) uses.push({ path: [name, 'from', 'url'], written: from.url, kind: 'path' });
  if (from.url !== undefined && (from.type === 'oci' || from.url.startsWith('oci:'))) uses.push({ path: [name, 'from', 'url'], written: from.url, kind: 'layout' });
  (layer.apply ?? []).forEach((entry, index) => {
    if (entry.startsWith('oci:')) uses.push({ path: [name, 'apply', index], written: entry, kind: 'layout' });
  });
  return uses;
}

/** Why a use reaches outside the recipe's directory, or undefined when it stays inside. */
export function escapeOf(use: HostPathUse): string | undefined {
  if (use.kind === 'layout') {
    return `"${use.written}" is an OCI layout on the build machine; this build reads images from registries only: push it and write docker://HOST/REPOSITORY:TAG`;
  }
  const normal = posix.normalize(use.written);
  const why = isAbsolute(use.written) ? 'is an absolute path on the build machine' : normal === '..' || normal.startsWith('../') ? "climbs out of the recipe's directory" : undefined;
  return why === undefined
    ? undefined
    : `"${use.written}" ${why}; this build reads local files only inside the recipe's directory: import by URL (https://...) or from another layer (stacker://LAYER/PATH)`;
}

/** A host path of a recipe that leaves its directory, and why. */
export interface Escape {
  layer: string;
  use: HostPathUse;
  message: string;
}

/** The recipe's host paths that leave its directory: refused by builds confined to it (the operator's, `restack build --recipe-dir-only`). */
export function escapesOf(recipe: Recipe): Escape[] {
  return [...recipe.layers].flatMap(([layer, definition]) =>
    hostPathUses(layer, definition).flatMap((use) => {
      const message = escapeOf(use);
      return message === undefined ? [] : [{ layer, use, message }];
    }),
  );
}

/** The same as errors at their fields. */
export function confinementDiagnostics(recipe: Recipe): Diagnostic[] {
  return escapesOf(recipe).map(({ use, message }) => ({ severity: 'error', file: recipe.file, position: recipe.locate(use.path), path: formatPath(use.path), message }));
}
