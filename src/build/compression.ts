import { createGunzip, createZstdDecompress } from 'node:zlib';
import { PassThrough, type Transform } from 'node:stream';
import { layerCompression, type LayerCompression } from '../oci/mediatypes.ts';
import { BuildError } from './errors.ts';

/** The stream that turns a tar layer blob of this media type back into tar bytes. */
export function decompressorFor(mediaType: string, digest: string): Transform {
  const compression: LayerCompression = layerCompression(mediaType);
  switch (compression) {
    case 'gzip':
      return createGunzip();
    case 'zstd':
      return createZstdDecompress();
    case 'none':
      return new PassThrough();
    case 'squashfs':
      throw new BuildError(
        'LAYER_UNSUPPORTED',
        `layer ${digest} is a squashfs layer (${mediaType}); only tar layers can be unpacked`,
        'rebuild the base image with tar layers (stacker build --layer-type tar)',
      );
  }
}
