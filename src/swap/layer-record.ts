/**
 * A layer's changes recorded at build time on its descriptor (annotation `restack.dev/changes`),
 * so that a swap's overlap check needs no blob read. Whoever can push the image can write this
 * annotation, and a forged record could hide an overlap; so the record is authenticated: an
 * HMAC-SHA256, under a key only restack's builder and swapper hold, over the layer's digest and
 * the entries. A record that is missing, malformed, too large or does not verify under the key
 * is ignored and the layer is read, as without records.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Descriptor } from '../oci/types.ts';
import type { EntryKind, LayerEntry } from './safety.ts';

export const layerChangesKey = 'restack.dev/changes';

/** A record above this size (encoded) is not written: the manifest stays small and the layer is read instead. */
export const maxRecordBytes = 64 * 1024;

/** Keys shorter than this are refused: a guessable key would let a pusher forge records. */
export const minRecordKeyBytes = 32;

type Encoded = [string, string] | [string, string, string];

const kindCodes: Record<EntryKind, string> = { file: 'f', directory: 'd', whiteout: 'w', opaque: 'o' };
const codeKinds = new Map(Object.entries(kindCodes).map(([kind, code]) => [code, kind as EntryKind]));

function assertKey(key: Uint8Array): void {
  if (key.length < minRecordKeyBytes) throw new RangeError(`a layer record key needs at least ${minRecordKeyBytes} bytes, got ${key.length}`);
}

function mac(key: Uint8Array, digest: string, entries: string): Buffer {
  return createHmac('sha256', key).update(`${layerChangesKey} v1\n${digest}\n${entries}`).digest();
}

/** The descriptor without a change record: what a build writes without a key, or when the record would be too large. */
export function withoutLayerChanges(descriptor: Descriptor): Descriptor {
  if (descriptor.annotations?.[layerChangesKey] === undefined) return descriptor;
  const { [layerChangesKey]: _dropped, ...annotations } = descriptor.annotations;
  const { annotations: _all, ...rest } = descriptor;
  return Object.keys(annotations).length === 0 ? rest : { ...rest, annotations };
}

/** The descriptor with its changes recorded and signed under `key` (any earlier record replaced); without a record when it would be too large. */
export function recordLayerChanges(descriptor: Descriptor, entries: readonly LayerEntry[], key: Uint8Array): Descriptor {
  assertKey(key);
  const encoded = JSON.stringify(entries.map((entry): Encoded => (entry.link === undefined ? [kindCodes[entry.kind], entry.path] : [kindCodes[entry.kind], entry.path, entry.link])));
  const value = JSON.stringify({ v: 1, mac: mac(key, descriptor.digest, encoded).toString('hex'), entries: JSON.parse(encoded) as Encoded[] });
  if (value.length > maxRecordBytes) return withoutLayerChanges(descriptor);
  return { ...descriptor, annotations: { ...descriptor.annotations, [layerChangesKey]: value } };
}

/**
 * The record key of one tenant (in the operator, one Stackerfile, `namespace/name`), derived from
 * the operator's master key: a build holds its own tenant's key only, so it can sign records that
 * tenant's swaps trust and no one else's. HMAC-SHA256 with the master as the key is a PRF: keys of
 * other tenants, and the master, cannot be computed from it.
 */
export function deriveRecordKey(master: Uint8Array, tenant: string): Uint8Array {
  assertKey(master);
  return createHmac('sha256', master).update(`${layerChangesKey} key v1\n${tenant}`).digest();
}

function decodeEntry(item: unknown): LayerEntry | undefined {
  if (!Array.isArray(item) || item.length < 2 || item.length > 3 || !item.every((part) => typeof part === 'string')) return undefined;
  const [code, path, link] = item as string[];
  const kind = codeKinds.get(code ?? '');
  if (kind === undefined || path === undefined) return undefined;
  return link === undefined ? { path, kind } : { path, kind, link };
}

/** The recorded changes of a layer when its record verifies under `key`; undefined otherwise (read the layer). */
export function recordedLayerChanges(descriptor: Descriptor, key: Uint8Array): LayerEntry[] | undefined {
  assertKey(key);
  const text = descriptor.annotations?.[layerChangesKey];
  if (text === undefined || text.length > maxRecordBytes) return undefined;
  let record: unknown;
  try {
    record = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof record !== 'object' || record === null) return undefined;
  const { v, mac: given, entries } = record as { v?: unknown; mac?: unknown; entries?: unknown };
  if (v !== 1 || typeof given !== 'string' || !/^[0-9a-f]{64}$/.test(given) || !Array.isArray(entries)) return undefined;
  if (!timingSafeEqual(Buffer.from(given, 'hex'), mac(key, descriptor.digest, JSON.stringify(entries)))) return undefined;
  const decoded = entries.map(decodeEntry);
  return decoded.every((entry) => entry !== undefined) ? (decoded as LayerEntry[]) : undefined;
}
