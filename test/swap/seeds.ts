import { composeToStore } from '../../src/engine/compose.ts';
import type { Descriptor } from '../../src/oci/types.ts';
import { referenceOpener } from '../../src/cli/commands/store-options.ts';
import { makeImage, makeLayer, writeImage, type BuiltLayer, type LayerEntry } from '../services/images.ts';

export const open = referenceOpener({});

export interface SeedImages {
  base: BuiltLayer;
  ssl: BuiltLayer;
  python3: BuiltLayer;
  own: BuiltLayer;
  /** Digest of A as composed. */
  a: string;
}

export interface SeedOptions {
  format?: 'oci' | 'docker';
  compression?: 'gzip' | 'none';
  /** Extra files of A's own layer (to provoke overlaps). */
  ownFiles?: Record<string, LayerEntry>;
  /** More own layers of A, above the first (a squashfs layer, say). */
  moreOwn?: BuiltLayer[];
  /** The descriptor A's manifest names for an own layer (one carrying a change record, say). */
  describeOwn?: (layer: BuiltLayer) => Promise<Descriptor>;
}

/** Pushes `<prefix>/<name>:latest` = base + one layer, as a build of the recipe would. */
export async function pushLayered(prefix: string, name: string, layers: BuiltLayer[], format: 'oci' | 'docker' = 'oci'): Promise<string> {
  const target = open(`${prefix}/${name}:latest`);
  const image = makeImage({ layers, format, config: { Env: ['PATH=/usr/bin:/bin'] } });
  return (await writeImage(target.store, target.repository, image, 'latest')).digest;
}

/**
 * The seeds' example in a registry: base, ssl = base + ssl's layer, python3 = base + python3's
 * layer, and A = compose(base; ssl, python3) + A's own layer, all under `prefix`.
 */
export async function pushSeeds(prefix: string, options: SeedOptions = {}): Promise<SeedImages> {
  const compression = options.compression ?? 'gzip';
  const format = options.format ?? 'oci';
  const base = await makeLayer({ 'etc/os-release': 'ID=tiny\n', 'bin/sh': '#!sh\n', 'etc/ld.so.cache': 'base cache\n' }, { compression });
  const ssl = await makeLayer({ 'usr/lib/libssl.so.3': 'ssl 3.0\n' }, { compression });
  const python3 = await makeLayer({ 'usr/bin/python3': 'python 3.11\n' }, { compression });
  const own = await makeLayer({ 'srv/A/app.py': 'print("A")\n', ...options.ownFiles }, { compression });
  await pushLayered(prefix, 'base', [base], format);
  await pushLayered(prefix, 'ssl', [base, ssl], format);
  await pushLayered(prefix, 'python3', [base, python3], format);
  const target = open(`${prefix}/a:latest`);
  const owns = [own, ...(options.moreOwn ?? [])];
  for (const layer of owns) await target.store.putBlob(target.repository, layer.descriptor, layer.bytes);
  const outcome = await composeToStore({
    base: open(`${prefix}/base:latest`),
    applied: [open(`${prefix}/ssl:latest`), open(`${prefix}/python3:latest`)],
    target,
    own: await Promise.all(
      owns.map(async (layer) => ({ descriptor: (await options.describeOwn?.(layer)) ?? layer.descriptor, diffId: layer.diffId, history: { created_by: 'run: ./A/install' } })),
    ),
  });
  return { base, ssl, python3, own, a: outcome.digest };
}
