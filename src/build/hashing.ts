import { Transform } from 'node:stream';
import type { DigestingHasher } from '../oci/digest.ts';

/** A pass-through stage that feeds every byte it passes to a hasher (digests and sizes in one pass). */
export function hashingStage(hasher: DigestingHasher): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      hasher.update(chunk);
      callback(null, chunk);
    },
  });
}
