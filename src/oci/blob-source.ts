import type { BlobSource } from './store.ts';

/** The chunks of a blob source; a stream source is opened here, once per call. */
export async function* blobChunks(source: BlobSource): AsyncGenerator<Uint8Array> {
  if (source instanceof Uint8Array) {
    yield source;
    return;
  }
  for await (const chunk of source()) {
    yield typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Uint8Array);
  }
}
