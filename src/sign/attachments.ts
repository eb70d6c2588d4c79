import { sha256Digest } from '../oci/digest.ts';
import { MediaType } from '../oci/mediatypes.ts';
import type { Descriptor } from '../oci/types.ts';

/**
 * cosign's tag scheme (sigstore/cosign pkg/oci/remote, pkg/oci/static): the signatures of the
 * manifest `sha256:<hex>` live in the same repository under the tag `sha256-<hex>.sig`, its
 * attestations under `sha256-<hex>.att`. Each is an OCI image whose layers are the payloads, one
 * per signature, each layer's descriptor annotated with its signature.
 */

export type AttachmentKind = 'sig' | 'att';

export const simpleSigningMediaType = 'application/vnd.dev.cosign.simplesigning.v1+json';
export const dsseMediaType = 'application/vnd.dsse.envelope.v1+json';
export const signatureAnnotation = 'dev.cosignproject.cosign/signature';
/** On attestation layers (and, by cosign, on the manifest): the in-toto predicate type. */
export const predicateTypeAnnotation = 'predicateType';

export function attachmentTag(digest: string, kind: AttachmentKind): string {
  return `${digest.replace(':', '-')}.${kind}`;
}

export interface SerializedAttachment {
  configDescriptor: Descriptor;
  configBytes: Uint8Array;
  manifestDescriptor: Descriptor;
  manifestBytes: Uint8Array;
}

const zeroTime = '0001-01-01T00:00:00Z';
const encoder = new TextEncoder();

/** A payload layer's descriptor: the payload bytes are stored uncompressed, so digest and diff_id agree. */
export function payloadDescriptor(mediaType: string, payload: Uint8Array, annotations: Record<string, string>): Descriptor {
  return { mediaType, size: payload.length, digest: sha256Digest(payload), annotations };
}

/**
 * The signature (or attestation) image over its payload layers, as cosign writes it from
 * go-containerregistry's empty image: an OCI manifest and a config with zero times, one history
 * entry and one diff_id per layer.
 */
export function attachmentImage(layers: readonly Descriptor[]): SerializedAttachment {
  const config = {
    architecture: '',
    created: zeroTime,
    history: layers.map(() => ({ created: zeroTime })),
    os: '',
    rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.digest) },
    config: {},
  };
  const configBytes = encoder.encode(JSON.stringify(config));
  const configDescriptor: Descriptor = { mediaType: MediaType.ociConfig, size: configBytes.length, digest: sha256Digest(configBytes) };
  const manifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: configDescriptor, layers };
  const manifestBytes = encoder.encode(JSON.stringify(manifest));
  return {
    configDescriptor,
    configBytes,
    manifestDescriptor: { mediaType: MediaType.ociManifest, size: manifestBytes.length, digest: sha256Digest(manifestBytes) },
    manifestBytes,
  };
}
