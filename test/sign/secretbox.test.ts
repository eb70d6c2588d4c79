import assert from 'node:assert/strict';
import { test } from 'node:test';
import { poly1305, secretboxOpen } from '../../src/sign/secretbox.ts';

const hex = (text: string) => Uint8Array.from(Buffer.from(text.replaceAll(':', ''), 'hex'));

test('Poly1305 gives the tag of RFC 8439 section 2.5.2', () => {
  const key = hex('85:d6:be:78:57:55:6d:33:7f:44:52:fe:42:d5:06:a8:01:03:80:8a:fb:0d:b2:fd:4a:bf:f6:af:41:49:f5:1b');
  const tag = poly1305(key, new TextEncoder().encode('Cryptographic Forum Research Group'));
  assert.equal(Buffer.from(tag).toString('hex'), 'a8061dc1305136c6c22b8baf0c0127a9');
});

// The box of golang.org/x/crypto/nacl/secretbox's TestSecretBox, generated with NaCl's C implementation.
const naclBox = hex('8442bc313f4626f1359e3b50122b6ce6fe66ddfe7d39d14e637eb4fd5b45beadab55198df6ab5368439792a23c87db70acb6156dc5ef957ac04f6276cf6093b84be77ff0849cc33e34b7254d5a8f65ad');

test('secretbox opens the NaCl reference box to its message', () => {
  const opened = secretboxOpen(naclBox, new Uint8Array(24).fill(2), new Uint8Array(32).fill(1));
  assert.deepEqual(opened, new Uint8Array(64).fill(3));
});

test('secretbox refuses a box under the wrong key or with any byte changed', () => {
  assert.equal(secretboxOpen(naclBox, new Uint8Array(24).fill(2), new Uint8Array(32).fill(9)), undefined);
  for (const index of [0, 15, 16, naclBox.length - 1]) {
    const tampered = Uint8Array.from(naclBox);
    tampered[index] = (tampered[index] as number) ^ 1;
    assert.equal(secretboxOpen(tampered, new Uint8Array(24).fill(2), new Uint8Array(32).fill(1)), undefined, `byte ${index}`);
  }
});
