import { createHash } from 'node:crypto';
import { restackSigning, type ImageSigning } from '../engine/signing.ts';
import { parsePrivateKey } from '../sign/keys.ts';
import { keySigner, type Signer } from '../sign/signer.ts';
import type { Kube, Stackerfile } from './kube.ts';

/** The keys of a signing key Secret, as `cosign generate-key-pair k8s://NAMESPACE/NAME` writes them. */
export const signingKeyFiles = { key: 'cosign.key', password: 'cosign.password' } as const;

/**
 * How the operator signs the swaps it runs itself: with the key of a Stackerfile's
 * spec.output.signing.keySecretRef. The Secret is read at each swap run (a rotated key is used
 * from the next one); a key already decrypted is kept, since scrypt costs a few hundred
 * milliseconds and a fan-out swaps thousands of Stackerfiles signed with one key.
 */
export class SigningKeys {
  readonly #signers = new Map<string, Signer>();
  readonly #capacity: number;

  constructor(capacity = 16) {
    this.#capacity = capacity;
  }

  /** undefined when the Stackerfile does not sign. */
  async forStackerfile(kube: Kube, stackerfile: Stackerfile): Promise<ImageSigning | undefined> {
    const secret = stackerfile.spec.output.signing?.keySecretRef.name;
    if (secret === undefined) return undefined;
    const namespace = stackerfile.metadata?.namespace ?? 'default';
    const { key, password } = await kube.signingKey(namespace, secret);
    const source = `Secret ${namespace}/${secret} (spec.output.signing.keySecretRef)`;
    const cacheKey = createHash('sha256').update(`${source}\0${key}\0${password ?? ''}`).digest('hex');
    let signer = this.#signers.get(cacheKey);
    if (signer === undefined) {
      signer = keySigner(parsePrivateKey(key, source, password), source);
      this.#signers.set(cacheKey, signer);
      const oldest = this.#signers.keys().next().value;
      if (this.#signers.size > this.#capacity && oldest !== undefined) this.#signers.delete(oldest);
    }
    return restackSigning(signer);
  }
}
