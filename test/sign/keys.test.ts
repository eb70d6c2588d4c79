import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { test } from 'node:test';
import { SigningError } from '../../src/sign/errors.ts';
import { parsePrivateKey, parsePublicKey } from '../../src/sign/keys.ts';
import { keySigner, verifies } from '../../src/sign/signer.ts';

const p256 = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const publicPem = p256.publicKey.export({ format: 'pem', type: 'spki' }) as string;
const fails = (code: string, pattern: RegExp) => (error: unknown) => error instanceof SigningError && error.code === code && pattern.test(`${error.message} hint: ${error.hint ?? ''}`);

test('unencrypted PKCS#8 and SEC 1 keys, and a passphrase-protected PKCS#8 key, sign what the public key verifies', async () => {
  const forms: [string, string | undefined][] = [
    [p256.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, undefined],
    [p256.privateKey.export({ format: 'pem', type: 'sec1' }) as string, undefined],
    [p256.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pass' }) as string, 'pass'],
  ];
  const data = new TextEncoder().encode('payload');
  const publicKey = parsePublicKey(publicPem, 'cosign.pub');
  for (const [text, password] of forms) {
    const signature = await keySigner(parsePrivateKey(text, 'key.pem', password), 'key.pem').sign(data);
    assert.ok(verifies(publicKey, data, signature));
    assert.ok(!verifies(publicKey, new TextEncoder().encode('other'), signature));
  }
});

test('keys restack cannot sign with are refused with the file, the reason and how to make a suitable key', () => {
  const p384 = generateKeyPairSync('ec', { namedCurve: 'secp384r1' }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  assert.throws(() => parsePrivateKey(p384, 'p384.pem', undefined), fails('KEY_UNSUPPORTED', /p384\.pem holds an ECDSA key on secp384r1.*hint: generate one with `cosign generate-key-pair`/));
  const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  assert.throws(() => parsePrivateKey(rsa, 'rsa.pem', undefined), fails('KEY_UNSUPPORTED', /rsa\.pem holds a key of type rsa/));
  assert.throws(() => parsePrivateKey(publicPem, 'cosign.pub', undefined), fails('KEY_INVALID', /"PUBLIC KEY" PEM block, not a private key.*cosign\.key/));
  assert.throws(() => parsePublicKey(p256.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string, 'cosign.key'), fails('KEY_INVALID', /not a public key/));
  assert.throws(() => parsePrivateKey('hello', 'notes.txt', undefined), fails('KEY_INVALID', /notes\.txt: no PEM block/));
  const encrypted = p256.privateKey.export({ format: 'pem', type: 'pkcs8', cipher: 'aes-256-cbc', passphrase: 'pass' }) as string;
  assert.throws(() => parsePrivateKey(encrypted, 'enc.pem', undefined), fails('KEY_PASSWORD', /COSIGN_PASSWORD/));
});

test('a cosign key whose scrypt parameters cosign never writes is refused before any scrypt runs', () => {
  const body = { kdf: { name: 'scrypt', params: { N: 1 << 30, r: 8, p: 1 }, salt: 'AA==' }, cipher: { name: 'nacl/secretbox', nonce: 'AA==' }, ciphertext: 'AA==' };
  const pem = `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${Buffer.from(JSON.stringify(body)).toString('base64')}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
  assert.throws(() => parsePrivateKey(pem, 'cosign.key', ''), fails('KEY_INVALID', /N=1073741824 r=8 p=1 are not scrypt parameters cosign writes/));
});
