import { sign as cryptoSign, verify as cryptoVerify, createPublicKey, type KeyObject } from 'node:crypto';

/**
 * What signs: ECDSA P-256 over SHA-256 with an ASN.1 DER signature, as cosign signs and verifies
 * with a key. A key file is one implementation (`keySigner`); a KMS signer implements the same
 * interface (its public key fetched once, `sign` a call to the KMS). A keyless signer would also
 * carry a certificate to annotate each signature with (docs/signing.md, "Other signers").
 */
export interface Signer {
  /** For messages: where the key is, e.g. `cosign.key` or `Secret team/signing`. */
  readonly description: string;
  /** The key that verifies this signer's signatures: how a signature already made is recognised. */
  readonly publicKey: KeyObject;
  sign(data: Uint8Array): Promise<Uint8Array>;
}

/** A signer over a private key held in memory. */
export function keySigner(privateKey: KeyObject, description: string): Signer {
  const publicKey = createPublicKey(privateKey);
  return {
    description,
    publicKey,
    sign: async (data) => cryptoSign('sha256', data, privateKey),
  };
}

/** Whether `signature` (DER) is the key's signature of `data`; false for malformed signatures too. */
export function verifies(publicKey: KeyObject, data: Uint8Array, signature: Uint8Array): boolean {
  try {
    return cryptoVerify('sha256', data, publicKey, signature);
  } catch {
    return false;
  }
}
