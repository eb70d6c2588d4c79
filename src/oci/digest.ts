import { createHash } from 'node:crypto';
import { OciError } from './errors.ts';

const digestPattern = /^sha256:[a-f0-9]{64}$/;

export function isDigest(value: string): boolean {
  return digestPattern.test(value);
}

export function assertDigest(value: string, what: string): string {
  if (!isDigest(value)) {
    throw new OciError('DIGEST_INVALID', `${what}: "${value}" is not a sha256 digest`, 'a digest looks like sha256:<64 lowercase hex>');
  }
  return value;
}

export function sha256Digest(bytes: Uint8Array | string): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

export function digestHex(digest: string): string {
  return assertDigest(digest, 'digest').slice('sha256:'.length);
}

export function digestMismatchError(source: string, expected: string, actual: string): OciError {
  return new OciError(
    'DIGEST_MISMATCH',
    `${source}: content does not match its digest (expected ${expected}, got ${actual})`,
    'the store returned corrupt or substituted content; nothing was written',
  );
}

/** Throws when bytes read from a store do not hash to the digest they were asked for. */
export function verifyDigest(bytes: Uint8Array, expected: string, source: string): void {
  const actual = sha256Digest(bytes);
  if (actual !== expected) throw digestMismatchError(source, expected, actual);
}

/** Incremental sha256 for streamed blobs. */
export class DigestingHasher {
  readonly #hash = createHash('sha256');
  size = 0;
  update(chunk: Uint8Array): void {
    this.#hash.update(chunk);
    this.size += chunk.length;
  }
  digest(): string {
    return `sha256:${this.#hash.digest('hex')}`;
  }
}
