import { OciError } from '../oci/errors.ts';
import type { Store } from '../oci/store.ts';
import { isIndex, type Descriptor } from '../oci/types.ts';
import { attachmentImage, attachmentTag, dsseMediaType, payloadDescriptor, predicateTypeAnnotation, signatureAnnotation, simpleSigningMediaType, type AttachmentKind } from './attachments.ts';
import { envelope, inTotoPayloadType, parseEnvelope, parseStatement, preAuthenticationEncoding, simpleSigningPayload, statement, statementNames, type Statement } from './payloads.ts';
import { verifies, type Signer } from './signer.ts';

/** Where an image's signatures go: its repository in a store, and its name as cosign's docker-reference (`host/repo`). */
export interface AttachTarget {
  store: Store;
  repository: string;
  name: string;
}

export type AttachmentWrite = 'written' | 'present';

export interface SigningOutcome {
  signature: AttachmentWrite;
  attestation: AttachmentWrite;
  /** `sha256-<hex>.sig` and `.att`. */
  tags: string[];
}

/** A payload layer read back with its bytes. */
export interface AttachedPayload {
  layer: Descriptor;
  payload: Uint8Array;
}

function isMissing(error: unknown): boolean {
  return error instanceof OciError && (error.code === 'MANIFEST_UNKNOWN' || error.code === 'NAME_UNKNOWN');
}

/** The payload layers under an image's `.sig` or `.att` tag; none when the tag does not exist. */
export async function attachedLayers(target: AttachTarget, digest: string, kind: AttachmentKind): Promise<Descriptor[]> {
  try {
    const { manifest } = await target.store.getManifest(target.repository, attachmentTag(digest, kind));
    return isIndex(manifest) ? [] : manifest.layers;
  } catch (error) {
    if (isMissing(error)) return [];
    throw error;
  }
}

export async function readPayload(target: AttachTarget, layer: Descriptor): Promise<AttachedPayload> {
  return { layer, payload: await target.store.readBlob(target.repository, layer) };
}

/**
 * What the `.sig` or `.att` tag holds, read while the new payload and the config it needs when the
 * tag holds nothing yet (the usual case: a digest just made) are uploaded: three requests at once
 * rather than one after another. Blobs are content-addressed: one uploaded for nothing (the
 * signature was there already) is unreferenced, harmless.
 */
async function readWhileUploading(target: AttachTarget, digest: string, kind: AttachmentKind, layer: Descriptor, payload: Uint8Array): Promise<Descriptor[]> {
  const { store, repository } = target;
  const alone = attachmentImage([layer]);
  const [existing] = await Promise.all([
    attachedLayers(target, digest, kind),
    store.putBlob(repository, layer, payload),
    store.putBlob(repository, alone.configDescriptor, alone.configBytes),
  ]);
  return existing;
}

/** Appends the payload layer (already uploaded) to the attachment image: its config, then the manifest under the tag, as cosign writes it. */
async function append(target: AttachTarget, digest: string, kind: AttachmentKind, existing: readonly Descriptor[], layer: Descriptor): Promise<void> {
  const { store, repository } = target;
  const image = attachmentImage([...existing, layer]);
  // The config uploaded up front names the new layer alone.
  if (existing.length > 0) await store.putBlob(repository, image.configDescriptor, image.configBytes);
  await store.putManifest(repository, image.manifestBytes, image.manifestDescriptor.mediaType, attachmentTag(digest, kind));
}

/** Whether a signature layer is this signer's signature of exactly `payload` (cosign's duplicate check). */
function signedBy(signer: Signer, layer: Descriptor, payload: Uint8Array, payloadDigest: string): boolean {
  const signature = layer.annotations?.[signatureAnnotation];
  return layer.digest === payloadDigest && signature !== undefined && verifies(signer.publicKey, payload, Buffer.from(signature, 'base64'));
}

/** Signs the manifest `digest` as `cosign sign --key` does, unless this signer already has. */
export async function attachSignature(target: AttachTarget, digest: string, signer: Signer): Promise<AttachmentWrite> {
  const payload = simpleSigningPayload(target.name, digest);
  const layer = payloadDescriptor(simpleSigningMediaType, payload, {});
  const existing = await readWhileUploading(target, digest, 'sig', layer, payload);
  if (existing.some((candidate) => signedBy(signer, candidate, payload, layer.digest))) return 'present';
  const signature = await signer.sign(payload);
  // The signature is in the layer's annotation, not in the payload blob.
  const annotated = { ...layer, annotations: { [signatureAnnotation]: Buffer.from(signature).toString('base64') } };
  await append(target, digest, 'sig', existing, annotated);
  return 'written';
}

/** The statement of a DSSE envelope, when one of its signatures is the key's; undefined otherwise. */
export function verifiedStatement(publicKey: Signer['publicKey'], bytes: Uint8Array): Statement | undefined {
  const parsed = parseEnvelope(bytes);
  if (parsed === undefined || parsed.payloadType !== inTotoPayloadType) return undefined;
  const signed = preAuthenticationEncoding(parsed.payloadType, parsed.payload);
  if (!parsed.signatures.some((signature) => verifies(publicKey, signed, signature))) return undefined;
  return parseStatement(parsed.payload);
}

/**
 * Attests `predicate` of `predicateType` about the manifest `digest` as `cosign attest --key`
 * does (a DSSE envelope over an in-toto statement), unless this signer already attested that
 * type for it: a swap or build repeated after a crash adds nothing.
 */
export async function attachAttestation(target: AttachTarget, digest: string, signer: Signer, predicateType: string, predicate: unknown): Promise<AttachmentWrite> {
  const body = statement(target.name, digest, predicateType, predicate);
  const signature = await signer.sign(preAuthenticationEncoding(inTotoPayloadType, body));
  const payload = envelope(body, signature);
  const layer = payloadDescriptor(dsseMediaType, payload, { [signatureAnnotation]: '', [predicateTypeAnnotation]: predicateType });
  const existing = await readWhileUploading(target, digest, 'att', layer, payload);
  for (const candidate of existing.filter((other) => other.mediaType === dsseMediaType && other.annotations?.[predicateTypeAnnotation] === predicateType)) {
    const attested = verifiedStatement(signer.publicKey, (await readPayload(target, candidate)).payload);
    if (attested !== undefined && attested.predicateType === predicateType && statementNames(attested, digest)) return 'present';
  }
  await append(target, digest, 'att', existing, layer);
  return 'written';
}

/** Signs and attests one manifest; both are written before the caller moves any tag to it. */
export async function signAndAttest(target: AttachTarget, digest: string, signer: Signer, predicateType: string, predicate: unknown): Promise<SigningOutcome> {
  const [signature, attestation] = await Promise.all([attachSignature(target, digest, signer), attachAttestation(target, digest, signer, predicateType, predicate)]);
  return { signature, attestation, tags: [attachmentTag(digest, 'sig'), attachmentTag(digest, 'att')] };
}
