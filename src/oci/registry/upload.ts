import { DigestingHasher, digestMismatchError } from '../digest.ts';
import type { Descriptor } from '../types.ts';
import { sizeMismatch } from '../verify-stream.ts';
import type { Scope } from './scope.ts';
import type { RegistryClient } from './client.ts';
import { resolveLocation, withQuery } from './urls.ts';

/** A blob's bytes, produced again for every try. */
export type ChunkSource = Uint8Array | (() => AsyncIterable<Uint8Array>);

export interface UploadOptions {
  /** Blobs larger than this are sent in PATCH chunks instead of one PUT. */
  chunkedThreshold: number;
  chunkSize: number;
}

/** Who the upload is for: the repository written, the name in messages, the token scopes. */
export interface UploadTarget {
  repository: string;
  subject: string;
  scopes: Scope[];
}

const octetStream = { 'content-type': 'application/octet-stream' };

/** Regroups a stream of chunks into chunks of exactly `size` bytes (the last one shorter). */
export async function* rechunk(chunks: AsyncIterable<Uint8Array>, size: number): AsyncGenerator<Uint8Array> {
  let pending: Uint8Array[] = [];
  let pendingLength = 0;
  for await (const chunk of chunks) {
    for (let offset = 0; offset < chunk.length; ) {
      const take = Math.min(size - pendingLength, chunk.length - offset);
      pending.push(chunk.subarray(offset, offset + take));
      pendingLength += take;
      offset += take;
      if (pendingLength === size) {
        yield Buffer.concat(pending);
        pending = [];
        pendingLength = 0;
      }
    }
  }
  if (pendingLength > 0) yield Buffer.concat(pending);
}

/**
 * Passes chunks on, holding the last one back until the whole source has been hashed: a source
 * that does not match its descriptor fails before its final byte is sent, so the registry never
 * completes a wrong blob.
 */
export async function* verifiedChunks(chunks: AsyncIterable<Uint8Array>, descriptor: Descriptor, what: string): AsyncGenerator<Uint8Array> {
  const hasher = new DigestingHasher();
  let held: Uint8Array | undefined;
  for await (const chunk of chunks) {
    hasher.update(chunk);
    if (hasher.size > descriptor.size) throw sizeMismatch(what, descriptor.size, hasher.size);
    if (held !== undefined) yield held;
    held = chunk;
  }
  if (hasher.size !== descriptor.size) throw sizeMismatch(what, descriptor.size, hasher.size);
  const actual = hasher.digest();
  if (actual !== descriptor.digest) throw digestMismatchError(what, descriptor.digest, actual);
  if (held !== undefined) yield held;
}

/** What the POST that opens an upload session also asks for: a mount from another repository, or the whole blob in its body. */
export type UploadStart = { mount: { digest: string; from: string } } | { monolithic: { digest: string; bytes: Uint8Array } };

/**
 * Opens an upload session (`POST /v2/<name>/blobs/uploads/`), optionally asking to mount the blob
 * instead, or sending it whole (`?digest=`). `complete` when the registry did what was asked (201):
 * the blob is in the repository; otherwise the session at `location` is open and the blob still
 * has to be sent (a registry may decline a mount, or ignore a monolithic body).
 */
export async function startUpload(client: RegistryClient, target: UploadTarget, start?: UploadStart): Promise<{ complete: boolean; location: URL }> {
  const query =
    start === undefined ? '' : 'mount' in start ? `?mount=${encodeURIComponent(start.mount.digest)}&from=${encodeURIComponent(start.mount.from)}` : `?digest=${encodeURIComponent(start.monolithic.digest)}`;
  const response = await client.call({
    method: 'POST',
    url: `/v2/${target.repository}/blobs/uploads/${query}`,
    ...(start !== undefined && 'monolithic' in start ? { headers: octetStream, body: start.monolithic.bytes, bodyKind: 'blob' as const } : {}),
    scopes: target.scopes,
    subject: target.subject,
    expect: start === undefined ? [202] : [201, 202],
    read: 'buffer',
  });
  return { complete: response.status === 201, location: resolveLocation(response.headers.get('location'), response.url) };
}

export async function cancelUpload(client: RegistryClient, location: URL, target: UploadTarget): Promise<void> {
  await client.call({ method: 'DELETE', url: location, scopes: target.scopes, subject: target.subject, expect: [204, 404], read: 'buffer' });
}

/** Sends a blob into an open upload session: one PUT, or PATCH chunks and a closing PUT for large blobs. */
export async function finishUpload(client: RegistryClient, location: URL, descriptor: Descriptor, source: ChunkSource, target: UploadTarget, options: UploadOptions): Promise<void> {
  const what = `${target.subject}: blob ${descriptor.digest}`;
  try {
    if (descriptor.size > options.chunkedThreshold) {
      await uploadChunked(client, location, descriptor, source, target, options, what);
    } else {
      await client.call({
        method: 'PUT',
        url: withQuery(location, { digest: descriptor.digest }),
        headers: octetStream,
        // Bytes were verified by the caller; a stream is verified while it is sent.
        body: source instanceof Uint8Array ? source : () => verifiedChunks(source(), descriptor, what),
        bodyKind: 'blob',
        scopes: target.scopes,
        subject: target.subject,
        expect: [201],
        read: 'buffer',
      });
    }
  } catch (error) {
    await cancelUpload(client, location, target).catch(() => undefined);
    throw error;
  }
}

async function uploadChunked(client: RegistryClient, start: URL, descriptor: Descriptor, source: ChunkSource, target: UploadTarget, options: UploadOptions, what: string): Promise<void> {
  let location = start;
  let offset = 0;
  const chunks = source instanceof Uint8Array ? (async function* () { yield source; })() : source();
  for await (const chunk of rechunk(verifiedChunks(chunks, descriptor, what), options.chunkSize)) {
    const response = await client.call({
      method: 'PATCH',
      url: location,
      headers: { ...octetStream, 'content-range': `${offset}-${offset + chunk.length - 1}` },
      body: chunk,
      bodyKind: 'blob',
      scopes: target.scopes,
      subject: target.subject,
      expect: [202],
      read: 'buffer',
    });
    offset += chunk.length;
    location = resolveLocation(response.headers.get('location'), response.url);
  }
  await client.call({
    method: 'PUT',
    url: withQuery(location, { digest: descriptor.digest }),
    headers: octetStream,
    body: new Uint8Array(),
    bodyKind: 'blob',
    scopes: target.scopes,
    subject: target.subject,
    expect: [201],
    read: 'buffer',
  });
}
