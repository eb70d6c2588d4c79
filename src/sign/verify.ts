import type { KeyObject } from 'node:crypto';
import { attachedLayers, readPayload, verifiedStatement, type AttachTarget } from './attach.ts';
import { attachmentTag, dsseMediaType, signatureAnnotation, simpleSigningMediaType } from './attachments.ts';
import { SigningError } from './errors.ts';
import { signedDigest, statementNames, type Statement } from './payloads.ts';
import { verifies } from './signer.ts';

export interface VerifiedAttachments {
  digest: string;
  /** Signatures by the key over a payload naming this digest. */
  signatures: number;
  /** Statements signed by the key about this digest, of the predicate type asked for. */
  statements: Statement[];
  /** Layers that did not verify, and why: kept for the report. */
  rejected: { tag: string; layer: string; reason: string }[];
}

type Rejected = VerifiedAttachments['rejected'];

async function verifiedSignatures(target: AttachTarget, digest: string, publicKey: KeyObject, rejected: Rejected): Promise<number> {
  const tag = attachmentTag(digest, 'sig');
  const layers = await attachedLayers(target, digest, 'sig');
  if (layers.length === 0) {
    throw new SigningError('SIGNATURE_MISSING', `${target.name}@${digest} has no signature (no ${tag} tag)`, 'sign it: restack build/swap/update --sign-key, or cosign sign --key');
  }
  let valid = 0;
  for (const layer of layers) {
    const reject = (reason: string) => rejected.push({ tag, layer: layer.digest, reason });
    if (layer.mediaType !== simpleSigningMediaType) continue;
    const { payload } = await readPayload(target, layer);
    const signature = layer.annotations?.[signatureAnnotation] ?? '';
    if (!verifies(publicKey, payload, Buffer.from(signature, 'base64'))) reject('the signature is not the key\'s signature of the payload');
    else if (signedDigest(payload) !== digest) reject(`the payload vouches for ${signedDigest(payload) ?? 'nothing'}, not ${digest}`);
    else valid++;
  }
  if (valid === 0) {
    throw new SigningError('SIGNATURE_INVALID', `${target.name}@${digest}: none of the ${layers.length} signature(s) under ${tag} verifies with the key`, 'check that the key is the public half of the signing key; re-sign the image if its signature was tampered with');
  }
  return valid;
}

async function verifiedStatements(target: AttachTarget, digest: string, publicKey: KeyObject, predicateType: string, rejected: Rejected): Promise<Statement[]> {
  const tag = attachmentTag(digest, 'att');
  const layers = await attachedLayers(target, digest, 'att');
  const statements: Statement[] = [];
  for (const layer of layers.filter((candidate) => candidate.mediaType === dsseMediaType)) {
    const attested = verifiedStatement(publicKey, (await readPayload(target, layer)).payload);
    if (attested === undefined) rejected.push({ tag, layer: layer.digest, reason: 'the envelope is not signed by the key' });
    else if (!statementNames(attested, digest)) rejected.push({ tag, layer: layer.digest, reason: `the statement is not about ${digest}` });
    else if (attested.predicateType === predicateType) statements.push(attested);
  }
  if (statements.length === 0) {
    const code = layers.length === 0 ? 'ATTESTATION_MISSING' : 'ATTESTATION_INVALID';
    const found = layers.length === 0 ? `no ${tag} tag` : `${layers.length} attestation(s) under ${tag}, none of type ${predicateType} that verifies`;
    throw new SigningError(code, `${target.name}@${digest} has no ${predicateType} attestation signed by the key (${found})`, 'attest it: restack build/swap/update --sign-key, or cosign attest --key --type slsaprovenance');
  }
  return statements;
}

/**
 * Checks an image's signatures and attestations as `cosign verify --key` and `cosign
 * verify-attestation --key --type` do: at least one signature by the key over a payload naming
 * the digest, and at least one statement of `predicateType` signed by the key whose subject is
 * the digest. Throws a SigningError when either is missing.
 */
export async function verifyAttachments(target: AttachTarget, digest: string, publicKey: KeyObject, predicateType: string): Promise<VerifiedAttachments> {
  const rejected: Rejected = [];
  const signatures = await verifiedSignatures(target, digest, publicKey, rejected);
  const statements = await verifiedStatements(target, digest, publicKey, predicateType, rejected);
  return { digest, signatures, statements, rejected };
}
