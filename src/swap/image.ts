import { sha256Digest } from '../oci/digest.ts';
import { MediaType } from '../oci/mediatypes.ts';
import type { Descriptor, ImageConfig, ImageManifest } from '../oci/types.ts';
import { baseDigestKey, baseNameKey, decodeProvenance, encodeProvenance, provenanceKey, type Provenance } from './provenance.ts';

/** One platform's image as transforms see it: no bytes but the manifest digest it was read at. */
export interface ImageParts {
  manifest: ImageManifest;
  config: ImageConfig;
  /** Digest of the manifest as stored; absent for an image not yet written. */
  digest?: string;
}

export type ManifestFormat = 'oci' | 'docker';

export function manifestFormat(manifest: ImageManifest): ManifestFormat {
  return manifest.mediaType === MediaType.dockerManifest || manifest.config.mediaType === MediaType.dockerConfig ? 'docker' : 'oci';
}

const ociNondistributableGzip = 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip';
const dockerLayerFor: Record<string, string> = {
  [MediaType.ociLayerGzip]: MediaType.dockerLayerGzip,
  [MediaType.dockerLayerGzip]: MediaType.dockerLayerGzip,
  [MediaType.ociLayerTar]: MediaType.dockerLayerTar,
  [MediaType.dockerLayerTar]: MediaType.dockerLayerTar,
  [ociNondistributableGzip]: MediaType.dockerForeignLayerGzip,
  [MediaType.dockerForeignLayerGzip]: MediaType.dockerForeignLayerGzip,
};
const ociLayerFor: Record<string, string> = {
  [MediaType.dockerLayerGzip]: MediaType.ociLayerGzip,
  [MediaType.dockerLayerTar]: MediaType.ociLayerTar,
  [MediaType.dockerForeignLayerGzip]: ociNondistributableGzip,
};

/** True when every layer can be named in a Docker schema2 manifest (tar or gzip, foreign gzip included). */
export function dockerCompatible(layers: readonly Descriptor[]): boolean {
  return layers.every((layer) => dockerLayerFor[layer.mediaType] !== undefined);
}

/**
 * The layer's descriptor with the media type of the target format. Docker and OCI gzip layers are
 * the same bytes; only the name differs, and runtimes refuse a mixed manifest.
 */
export function convertLayer(layer: Descriptor, format: ManifestFormat): Descriptor {
  const mediaType = format === 'docker' ? dockerLayerFor[layer.mediaType] : ociLayerFor[layer.mediaType];
  return mediaType === undefined || mediaType === layer.mediaType ? layer : { ...layer, mediaType };
}

/** Reads provenance from where the format keeps it; undefined for images restack did not make. */
export function readProvenance(image: ImageParts, source: string): Provenance | undefined {
  const text =
    manifestFormat(image.manifest) === 'docker'
      ? image.config.config?.Labels?.[provenanceKey]
      : image.manifest.annotations?.[provenanceKey];
  return text === undefined ? undefined : decodeProvenance(text, source);
}

/** The manifest and config with provenance (and the standard base annotations) written in. */
export function writeProvenance(manifest: ImageManifest, config: ImageConfig, provenance: Provenance): { manifest: ImageManifest; config: ImageConfig } {
  const record: Record<string, string> = { [provenanceKey]: encodeProvenance(provenance) };
  if (provenance.base !== null) {
    record[baseNameKey] = provenance.base.ref.replace(/^docker:\/\//, '');
    record[baseDigestKey] = provenance.base.digest;
  }
  if (manifestFormat(manifest) === 'docker') {
    const inner = config.config ?? {};
    return { manifest, config: { ...config, config: { ...inner, Labels: { ...(inner.Labels ?? {}), ...record } } } };
  }
  return { manifest: { ...manifest, annotations: { ...(manifest.annotations ?? {}), ...record } }, config };
}

/** The bytes to store: config first (the manifest names its digest), then the manifest. */
export interface SerializedImage {
  configBytes: Uint8Array;
  configDescriptor: Descriptor;
  manifest: ImageManifest;
  manifestBytes: Uint8Array;
  manifestDescriptor: Descriptor;
}

const encoder = new TextEncoder();

/** Serialises deterministically: the same image always gives the same digests. */
export function serializeImage(image: { manifest: ImageManifest; config: ImageConfig }): SerializedImage {
  const configBytes = encoder.encode(JSON.stringify(image.config));
  const configDescriptor: Descriptor = { mediaType: image.manifest.config.mediaType, digest: sha256Digest(configBytes), size: configBytes.length };
  // the descriptor is made anew: embedded `data` or annotations of an earlier config would not describe these bytes
  const manifest: ImageManifest = { ...image.manifest, config: configDescriptor };
  const manifestBytes = encoder.encode(JSON.stringify(manifest));
  const mediaType = manifest.mediaType ?? MediaType.ociManifest;
  return {
    configBytes,
    configDescriptor,
    manifest,
    manifestBytes,
    manifestDescriptor: { mediaType, digest: sha256Digest(manifestBytes), size: manifestBytes.length },
  };
}
