import { Transform } from 'node:stream';
import { DigestingHasher, digestMismatchError } from './digest.ts';
import { OciError } from './errors.ts';
import type { Descriptor } from './types.ts';

export function sizeMismatch(source: string, expected: number, actual: number): OciError {
  const what = actual < expected ? `ended after ${actual} of ${expected} bytes (truncated)` : `has more than the ${expected} bytes its descriptor declares`;
  return new OciError('SIZE_MISMATCH', `${source}: blob ${what}`, 'the store sent incomplete or corrupt content; nothing was written');
}

/**
 * A pass-through that hashes what flows and fails at the end (or as soon as the size is
 * exceeded) when the bytes do not match the descriptor, so a consumer never sees a clean end
 * for wrong content.
 */
export function verifyingStream(descriptor: Pick<Descriptor, 'digest' | 'size'>, source: string): Transform {
  const hasher = new DigestingHasher();
  const stream = new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hasher.update(chunk);
      if (hasher.size > descriptor.size) callback(sizeMismatch(source, descriptor.size, hasher.size));
      else callback(null, chunk);
    },
    flush(callback) {
      if (hasher.size !== descriptor.size) return callback(sizeMismatch(source, descriptor.size, hasher.size));
      const actual = hasher.digest();
      callback(actual === descriptor.digest ? null : digestMismatchError(source, descriptor.digest, actual));
    },
  });
  // A small blob can be checked in full before anyone reads: its error must then wait in the
  // stream's errored state (for-await and pipeline report it) rather than crash the process.
  stream.on('error', () => undefined);
  return stream;
}

/** Verifies whole bytes against a descriptor's size and digest. */
export function verifyBytes(bytes: Uint8Array, descriptor: Pick<Descriptor, 'digest' | 'size'>, source: string): void {
  const hasher = new DigestingHasher();
  hasher.update(bytes);
  if (bytes.length !== descriptor.size) throw sizeMismatch(source, descriptor.size, bytes.length);
  const actual = hasher.digest();
  if (actual !== descriptor.digest) throw digestMismatchError(source, descriptor.digest, actual);
}
