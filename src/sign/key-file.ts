import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SigningError } from './errors.ts';
import { parsePrivateKey, parsePublicKey } from './keys.ts';
import { keySigner, type Signer } from './signer.ts';

async function readKeyFile(path: string, what: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SigningError('KEY_INVALID', `${what} ${path} cannot be read (${reason})`, 'pass the path of a key file written by `cosign generate-key-pair`', { cause: error });
  }
}

/** A signer over a private key file; the password is COSIGN_PASSWORD, as cosign reads it. */
export async function fileSigner(path: string, environment: Readonly<Record<string, string | undefined>>): Promise<Signer> {
  return keySigner(parsePrivateKey(await readKeyFile(path, 'signing key'), path, environment['COSIGN_PASSWORD']), path);
}

export async function publicKeyFile(path: string): Promise<KeyObject> {
  return parsePublicKey(await readKeyFile(path, 'public key'), path);
}
