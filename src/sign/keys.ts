import { createPrivateKey, createPublicKey, scryptSync, type KeyObject } from 'node:crypto';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { SigningError } from './errors.ts';

/**
 * Key files as cosign reads them (sigstore/cosign pkg/cosign/keys.go): `cosign generate-key-pair`
 * writes `cosign.key`, a PEM block "ENCRYPTED SIGSTORE PRIVATE KEY" (older versions: "ENCRYPTED
 * COSIGN PRIVATE KEY") whose body is go-securesystemslib's encrypted JSON: scrypt derives a key
 * from the password, and NaCl secretbox holds the PKCS#8 DER of the private key. Also read, as
 * `cosign import-key-pair` does: an unencrypted PKCS#8 "PRIVATE KEY" or SEC 1 "EC PRIVATE KEY"
 * (what openssl writes), and an OpenSSL "ENCRYPTED PRIVATE KEY". Only ECDSA P-256 keys sign
 * (cosign's default, and what every verifier of the cosign tag scheme accepts).
 */

const encryptedTypes = new Set(['ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY']);
/** The scrypt strengths go-securesystemslib writes (legacy, standard, OWASP); any other is refused as it refuses them. */
const scryptParameters = new Set(['32768/8/1', '65536/8/1', '131072/8/1']);

interface PemBlock {
  type: string;
  body: Buffer;
  text: string;
}

function firstPemBlock(text: string, source: string): PemBlock {
  const match = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([\s\S]*?)-----END \1-----/.exec(text);
  if (match === null) {
    throw new SigningError('KEY_INVALID', `${source}: no PEM block (-----BEGIN ...-----) found`, 'pass the cosign.key (or cosign.pub) that `cosign generate-key-pair` wrote');
  }
  const [block, type = '', body = ''] = match;
  return { type, body: Buffer.from(body.replace(/\s+/g, ''), 'base64'), text: block };
}

interface EncryptedKey {
  kdf: { name: string; params: { N: number; r: number; p: number }; salt: string };
  cipher: { name: string; nonce: string };
  ciphertext: string;
}

function parseEncrypted(body: Buffer, source: string): EncryptedKey {
  const invalid = (why: string) => new SigningError('KEY_INVALID', `${source}: ${why}`, 'the file is damaged: generate a new pair with `cosign generate-key-pair`');
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    throw invalid('the encrypted key is not the JSON cosign writes');
  }
  const key = parsed as Partial<EncryptedKey>;
  if (key.kdf?.name !== 'scrypt') throw invalid(`kdf.name is ${JSON.stringify(key.kdf?.name)}, not "scrypt"`);
  if (key.cipher?.name !== 'nacl/secretbox') throw invalid(`cipher.name is ${JSON.stringify(key.cipher?.name)}, not "nacl/secretbox"`);
  const { N, r, p } = key.kdf.params ?? {};
  if (!scryptParameters.has(`${N}/${r}/${p}`)) throw invalid(`kdf.params N=${N} r=${r} p=${p} are not scrypt parameters cosign writes`);
  if (typeof key.kdf.salt !== 'string' || typeof key.cipher.nonce !== 'string' || typeof key.ciphertext !== 'string') throw invalid('salt, nonce or ciphertext is missing');
  return key as EncryptedKey;
}

/** The PKCS#8 DER inside a cosign-encrypted key; an empty password is valid (as COSIGN_PASSWORD=""). */
function decryptCosignKey(body: Buffer, password: string, source: string): Buffer {
  const key = parseEncrypted(body, source);
  const { N, r, p } = key.kdf.params;
  const derived = scryptSync(Buffer.from(password, 'utf8'), Buffer.from(key.kdf.salt, 'base64'), 32, { N, r, p, maxmem: 256 * N * r });
  const opened = openSecretbox(Buffer.from(key.ciphertext, 'base64'), Buffer.from(key.cipher.nonce, 'base64'), derived);
  if (opened === undefined) {
    throw new SigningError('KEY_PASSWORD', `${source}: the password does not decrypt the key`, 'set COSIGN_PASSWORD to the password given to `cosign generate-key-pair` (an empty one if none was)');
  }
  return Buffer.from(opened);
}

/** NaCl secretbox (XSalsa20-Poly1305, as golang.org/x/crypto/nacl/secretbox), which OpenSSL and so node:crypto lack; undefined when the tag does not verify. */
function openSecretbox(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | undefined {
  try {
    return xsalsa20poly1305(key, nonce).decrypt(box);
  } catch {
    return undefined;
  }
}

function requireP256(key: KeyObject, source: string): KeyObject {
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (key.asymmetricKeyType !== 'ec' || curve !== 'prime256v1') {
    const what = key.asymmetricKeyType === 'ec' ? `an ECDSA key on ${curve}` : `a key of type ${key.asymmetricKeyType ?? 'unknown'}`;
    throw new SigningError('KEY_UNSUPPORTED', `${source} holds ${what}; restack signs with ECDSA P-256 keys only`, 'generate one with `cosign generate-key-pair` (or `openssl ecparam -name prime256v1 -genkey`)');
  }
  return key;
}

function unreadable(source: string, what: string, error: unknown): SigningError {
  const reason = error instanceof Error ? error.message : String(error);
  return new SigningError('KEY_INVALID', `${source}: the ${what} cannot be read (${reason})`, 'pass the cosign.key (or cosign.pub) that `cosign generate-key-pair` wrote', { cause: error });
}

/**
 * Reads a private key file's text. `password` decrypts a cosign or OpenSSL encrypted key; for a
 * cosign key, undefined means the empty password.
 */
export function parsePrivateKey(text: string, source: string, password: string | undefined): KeyObject {
  const block = firstPemBlock(text, source);
  let key: KeyObject;
  try {
    if (encryptedTypes.has(block.type)) {
      key = createPrivateKey({ key: decryptCosignKey(block.body, password ?? '', source), format: 'der', type: 'pkcs8' });
    } else if (block.type === 'PRIVATE KEY' || block.type === 'EC PRIVATE KEY') {
      key = createPrivateKey(block.text);
    } else if (block.type === 'ENCRYPTED PRIVATE KEY') {
      if (password === undefined) throw new SigningError('KEY_PASSWORD', `${source} is encrypted and no password was given`, 'set COSIGN_PASSWORD to its passphrase');
      key = createPrivateKey({ key: block.text, passphrase: password });
    } else {
      throw new SigningError('KEY_INVALID', `${source} holds a "${block.type}" PEM block, not a private key`, 'pass the private key file (cosign.key), not the public key or a certificate');
    }
  } catch (error) {
    if (error instanceof SigningError) throw error;
    throw unreadable(source, 'private key', error);
  }
  return requireP256(key, source);
}

/** Reads a public key file's text: PEM "PUBLIC KEY" (PKIX), as cosign.pub. */
export function parsePublicKey(text: string, source: string): KeyObject {
  const block = firstPemBlock(text, source);
  if (block.type !== 'PUBLIC KEY') {
    throw new SigningError('KEY_INVALID', `${source} holds a "${block.type}" PEM block, not a public key`, 'pass the public key file (cosign.pub) to verify with');
  }
  let key: KeyObject;
  try {
    key = createPublicKey(block.text);
  } catch (error) {
    throw unreadable(source, 'public key', error);
  }
  return requireP256(key, source);
}
