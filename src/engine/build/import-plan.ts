import { posix, resolve } from 'node:path';
import type { ImportsLocation } from '../../build/lxc-config.ts';
import type { ImportObject, Layer } from '../../stackerfile/schema.ts';

/** Where an import's content comes from. */
export type ImportSource =
  | { kind: 'local'; path: string }
  | { kind: 'http'; url: string }
  /** A file or directory of an earlier layer's image: `stacker://layer/path`. */
  | { kind: 'stacker'; layer: string; path: string };

export interface ImportSpec {
  /** The recipe field and index, for messages: `imports.0`. */
  field: string;
  /** The path as the recipe wrote it. */
  written: string;
  source: ImportSource;
  /** Expected sha256, lowercase hex. */
  hash?: string;
  /** Absolute path in the image to copy to, instead of /stacker/imports. */
  dest?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

export interface LayerImports {
  specs: ImportSpec[];
  /** Where the imports without dest are seen while `run` executes. */
  location: ImportsLocation;
}

/** Local paths are relative to the recipe's directory. */
export function importSource(written: string, recipeDir: string): ImportSource {
  if (/^https?:\/\//.test(written)) return { kind: 'http', url: written };
  if (written.startsWith('stacker://')) {
    const rest = written.slice('stacker://'.length);
    const slash = rest.indexOf('/');
    return slash <= 0 ? { kind: 'stacker', layer: rest, path: '' } : { kind: 'stacker', layer: rest.slice(0, slash), path: rest.slice(slash) };
  }
  return { kind: 'local', path: resolve(recipeDir, written) };
}

function specOf(entry: string | ImportObject, field: string, recipeDir: string): ImportSpec {
  const object: ImportObject = typeof entry === 'string' ? { path: entry } : entry;
  return {
    field,
    written: object.path,
    source: importSource(object.path, recipeDir),
    ...(object.hash === undefined ? {} : { hash: object.hash.toLowerCase() }),
    ...(object.dest === undefined ? {} : { dest: object.dest }),
    ...(object.mode === undefined ? {} : { mode: object.mode }),
    ...(object.uid === undefined ? {} : { uid: object.uid }),
    ...(object.gid === undefined ? {} : { gid: object.gid }),
  };
}

/** The layer's imports (or the deprecated `import:`, seen at /stacker) in recipe order. */
export function layerImports(layer: Layer, recipeDir: string): LayerImports {
  const field = layer.imports !== undefined ? 'imports' : 'import';
  const raw = layer.imports ?? layer.import ?? [];
  const entries = typeof raw === 'string' ? [raw] : raw;
  return {
    specs: entries.map((entry, index) => specOf(entry, `${field}.${index}`, recipeDir)),
    location: field === 'imports' ? '/stacker/imports' : '/stacker',
  };
}

/**
 * `overlay_dirs` as imports with dest: each host directory's contents copied into the image at
 * dest (default /), so they are placed, owned and cached exactly like directory imports.
 */
export function overlayDirSpecs(layer: Layer, recipeDir: string): ImportSpec[] {
  return (layer.overlay_dirs ?? []).map((overlay, index) => {
    const written = overlay.source.endsWith('/') ? overlay.source : `${overlay.source}/`;
    return { field: `overlay_dirs.${index}`, written, source: importSource(written, recipeDir), dest: overlay.dest ?? '/' };
  });
}

/** The name an import has in /stacker/imports: the last component of its path or URL. */
export function importName(written: string): string {
  const path = /^https?:\/\//.test(written) ? new URL(written).pathname : written;
  return posix.basename(path.replace(/\/+$/, '')) || 'import';
}

/**
 * Where an import with `dest` lands in the image, as stacker places it: a dest ending in `/` is a
 * directory that receives the file (or directory) under its own name; otherwise dest is the new
 * name. A source directory written with a trailing `/` gives its contents to dest itself.
 * Directories are merged into the target directory.
 */
export function importTarget(written: string, dest: string, isDirectory: boolean): string {
  const target = isDirectory && written.endsWith('/') ? dest : dest.endsWith('/') ? posix.join(dest, importName(written)) : dest;
  return posix.normalize(target).replace(/(.)\/+$/, '$1');
}
