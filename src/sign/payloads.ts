/**
 * The bytes cosign signs, built and read exactly as cosign does (sigstore/sigstore
 * pkg/signature/payload, secure-systems-lab/go-securesystemslib dsse, in-toto Statement v0.1).
 */

const encoder = new TextEncoder();

export const simpleSigningType = 'cosign container image signature';

/**
 * The "simple signing" payload of a cosign image signature. Field order as Go's encoding/json
 * writes the struct; `optional` is null when there are no annotations, as `cosign sign` leaves it.
 */
export function simpleSigningPayload(dockerReference: string, digest: string): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      critical: { identity: { 'docker-reference': dockerReference }, image: { 'docker-manifest-digest': digest }, type: simpleSigningType },
      optional: null,
    }),
  );
}

/** The manifest digest a simple signing payload vouches for; undefined when the payload is not one. */
export function signedDigest(payload: Uint8Array): string | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(payload).toString('utf8')) as { critical?: { type?: unknown; image?: { 'docker-manifest-digest'?: unknown } } };
    const digest = parsed.critical?.image?.['docker-manifest-digest'];
    return parsed.critical?.type === simpleSigningType && typeof digest === 'string' ? digest : undefined;
  } catch {
    return undefined;
  }
}

export const inTotoPayloadType = 'application/vnd.in-toto+json';
export const inTotoStatementType = 'https://in-toto.io/Statement/v0.1';

export interface Statement {
  _type: string;
  predicateType: string;
  subject: { name: string; digest: Record<string, string> }[];
  predicate: unknown;
}

export interface Envelope {
  payload: string;
  payloadType: string;
  signatures: { keyid?: string; sig: string }[];
}

/** DSSE's pre-authentication encoding: what a DSSE signature covers (DSSE v1.0 protocol). */
export function preAuthenticationEncoding(payloadType: string, payload: Uint8Array): Uint8Array {
  const type = encoder.encode(payloadType);
  return Buffer.concat([encoder.encode(`DSSEv1 ${type.length} `), type, encoder.encode(` ${payload.length} `), payload]);
}

/** An in-toto statement about one image digest (`sha256:<hex>`), named by its repository. */
export function statement(subjectName: string, digest: string, predicateType: string, predicate: unknown): Uint8Array {
  const [algorithm, hex] = digest.split(':');
  const body: Statement = { _type: inTotoStatementType, predicateType, subject: [{ name: subjectName, digest: { [algorithm ?? 'sha256']: hex ?? '' } }], predicate };
  return encoder.encode(JSON.stringify(body));
}

/** A DSSE envelope as cosign writes it (no keyid: a key-based signature names no key). */
export function envelope(payload: Uint8Array, signature: Uint8Array): Uint8Array {
  const body: Envelope = {
    payload: Buffer.from(payload).toString('base64'),
    payloadType: inTotoPayloadType,
    signatures: [{ sig: Buffer.from(signature).toString('base64') }],
  };
  return encoder.encode(JSON.stringify(body));
}

/** An envelope's parts; undefined when the bytes are not a DSSE envelope. */
export function parseEnvelope(bytes: Uint8Array): { payloadType: string; payload: Uint8Array; signatures: Uint8Array[] } | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<Envelope>;
    if (typeof parsed.payloadType !== 'string' || typeof parsed.payload !== 'string' || !Array.isArray(parsed.signatures)) return undefined;
    return {
      payloadType: parsed.payloadType,
      payload: Buffer.from(parsed.payload, 'base64'),
      signatures: parsed.signatures.flatMap((entry) => (typeof entry?.sig === 'string' ? [Buffer.from(entry.sig, 'base64')] : [])),
    };
  } catch {
    return undefined;
  }
}

/** A statement's parts; undefined when the payload is not an in-toto statement. */
export function parseStatement(payload: Uint8Array): Statement | undefined {
  try {
    const parsed = JSON.parse(Buffer.from(payload).toString('utf8')) as Partial<Statement>;
    if (typeof parsed.predicateType !== 'string' || !Array.isArray(parsed.subject)) return undefined;
    return parsed as Statement;
  } catch {
    return undefined;
  }
}

/** Whether a statement is about the image digest `sha256:<hex>` (as cosign's claim check). */
export function statementNames(parsed: Statement, digest: string): boolean {
  const [algorithm = '', hex = ''] = digest.split(':');
  return parsed.subject.some((subject) => subject.digest?.[algorithm] === hex);
}
