/**
 * NaCl's secretbox (XSalsa20 and Poly1305), as golang.org/x/crypto/nacl/secretbox: what cosign
 * encrypts its private keys with (docs/signing.md). OpenSSL, and so node:crypto, has neither
 * primitive; both are short and specified exactly (Bernstein, "The Salsa20 family of stream
 * ciphers" and "Extending the Salsa20 nonce"; RFC 8439 section 2.5 for Poly1305). Only ever run
 * over a few hundred bytes of key material, so clarity wins over speed.
 */

const sigma = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] as const;

function word(bytes: Uint8Array, offset: number): number {
  return ((bytes[offset] as number) | ((bytes[offset + 1] as number) << 8) | ((bytes[offset + 2] as number) << 16) | ((bytes[offset + 3] as number) << 24)) >>> 0;
}

function rotl(value: number, shift: number): number {
  return ((value << shift) | (value >>> (32 - shift))) >>> 0;
}

/** The Salsa20 state: constants, the key, and 16 bytes of nonce and counter. */
function initialState(key: Uint8Array, input16: Uint8Array): Uint32Array {
  const state = new Uint32Array(16);
  state[0] = sigma[0];
  state[5] = sigma[1];
  state[10] = sigma[2];
  state[15] = sigma[3];
  for (let i = 0; i < 4; i++) {
    state[1 + i] = word(key, 4 * i);
    state[11 + i] = word(key, 16 + 4 * i);
    state[6 + i] = word(input16, 4 * i);
  }
  return state;
}

/** Twenty rounds (ten column rounds, ten row rounds) over the state, in place. */
function rounds(x: Uint32Array): void {
  const quarter = (a: number, b: number, c: number, d: number) => {
    x[b] = (x[b] as number) ^ rotl(((x[a] as number) + (x[d] as number)) >>> 0, 7);
    x[c] = (x[c] as number) ^ rotl(((x[b] as number) + (x[a] as number)) >>> 0, 9);
    x[d] = (x[d] as number) ^ rotl(((x[c] as number) + (x[b] as number)) >>> 0, 13);
    x[a] = (x[a] as number) ^ rotl(((x[d] as number) + (x[c] as number)) >>> 0, 18);
  };
  for (let round = 0; round < 10; round++) {
    quarter(0, 4, 8, 12);
    quarter(5, 9, 13, 1);
    quarter(10, 14, 2, 6);
    quarter(15, 3, 7, 11);
    quarter(0, 1, 2, 3);
    quarter(5, 6, 7, 4);
    quarter(10, 11, 8, 9);
    quarter(15, 12, 13, 14);
  }
}

function littleEndian(words: Iterable<number>): Uint8Array {
  const values = [...words];
  const bytes = new Uint8Array(4 * values.length);
  const view = new DataView(bytes.buffer);
  values.forEach((value, index) => view.setUint32(4 * index, value, true));
  return bytes;
}

/** HSalsa20: a 32-byte subkey from a key and the first 16 bytes of an XSalsa20 nonce. */
export function hsalsa20(key: Uint8Array, nonce16: Uint8Array): Uint8Array {
  const x = initialState(key, nonce16);
  rounds(x);
  return littleEndian([0, 5, 10, 15, 6, 7, 8, 9].map((index) => x[index] as number));
}

/** `length` bytes of the XSalsa20 key stream for a 32-byte key and a 24-byte nonce. */
export function xsalsa20Stream(key: Uint8Array, nonce: Uint8Array, length: number): Uint8Array {
  const subkey = hsalsa20(key, nonce.subarray(0, 16));
  const input = new Uint8Array(16);
  input.set(nonce.subarray(16, 24), 0);
  const stream = new Uint8Array(length);
  for (let block = 0, offset = 0; offset < length; block++, offset += 64) {
    new DataView(input.buffer).setUint32(8, block, true);
    const state = initialState(subkey, input);
    const x = Uint32Array.from(state);
    rounds(x);
    const out = littleEndian(x.map((value, index) => (value + (state[index] as number)) >>> 0));
    stream.set(out.subarray(0, Math.min(64, length - offset)), offset);
  }
  return stream;
}

function littleEndianNumber(bytes: Uint8Array): bigint {
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i] as number);
  return value;
}

const p1305 = (1n << 130n) - 5n;

/** The Poly1305 one-time authenticator of a message under a 32-byte key (RFC 8439 section 2.5). */
export function poly1305(key: Uint8Array, message: Uint8Array): Uint8Array {
  const r = littleEndianNumber(key.subarray(0, 16)) & 0x0ffffffc0ffffffc0ffffffc0fffffffn;
  const s = littleEndianNumber(key.subarray(16, 32));
  let accumulator = 0n;
  for (let offset = 0; offset < message.length; offset += 16) {
    const block = message.subarray(offset, offset + 16);
    const n = littleEndianNumber(block) | (1n << BigInt(8 * block.length));
    accumulator = ((accumulator + n) * r) % p1305;
  }
  let tag = (accumulator + s) & ((1n << 128n) - 1n);
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++, tag >>= 8n) out[i] = Number(tag & 0xffn);
  return out;
}

const tagBytes = 16;

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < Math.min(a.length, b.length); i++) difference |= (a[i] as number) ^ (b[i] as number);
  return difference === 0;
}

/**
 * secretbox.Open: checks the 16-byte tag that precedes the ciphertext, then decrypts. Returns
 * undefined when the key (a wrong password) or the bytes are wrong.
 */
export function secretboxOpen(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | undefined {
  if (key.length !== 32 || nonce.length !== 24 || box.length < tagBytes) return undefined;
  const ciphertext = box.subarray(tagBytes);
  const stream = xsalsa20Stream(key, nonce, 32 + ciphertext.length);
  if (!constantTimeEqual(poly1305(stream.subarray(0, 32), ciphertext), box.subarray(0, tagBytes))) return undefined;
  return ciphertext.map((byte, index) => byte ^ (stream[32 + index] as number));
}
