// HMAC-SHA256 (RFC 2104 over FIPS 180-4 SHA-256) for the `hash` strategy, which hashes one short value per masked
// cell. node:crypto computes the same bytes, but each createHmac() call builds a native object and hashes both
// padded keys again: about 2-5 µs a value on the machines this runs on, against under 1 µs here, where the two
// padded-key blocks are compressed once per key and each value costs two block compressions when it is shorter than
// 56 bytes. hmac.test.ts checks every output against node:crypto (RFC 4231 vectors, all lengths around the block
// boundaries, long keys).

/** The keyed hash behind the `hash` strategy: same key and value, same output, so joins and GROUP BY still work. */
export interface Hasher {
  /** HMAC-SHA256 of `data` under the hasher's key: a new 32-byte array. */
  digest(data: Uint8Array): Uint8Array;
}

// The first 32 bits of the fractional parts of the cube roots of the first 64 primes (FIPS 180-4, 4.2.2).
const K = new Int32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);

// The initial hash value (FIPS 180-4, 5.3.3).
const IV = new Int32Array([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);

const BLOCK = 64;

/** The message schedule: its first 16 words are the block being compressed. */
const W = new Int32Array(64);
/** The last block(s) of a message, padded. */
const tail = new Uint8Array(2 * BLOCK);

/** Loads 16 big-endian words of `bytes` from `at` into the schedule. */
function load(bytes: Uint8Array, at: number): void {
  for (let i = 0; i < 16; i++, at += 4) {
    W[i] = (bytes[at]! << 24) | (bytes[at + 1]! << 16) | (bytes[at + 2]! << 8) | bytes[at + 3]!;
  }
}

/** Compresses the block in W[0..15] into `state` (FIPS 180-4, 6.2.2). */
function compress(state: Int32Array): void {
  for (let i = 16; i < 64; i++) {
    const a = W[i - 15]!;
    const b = W[i - 2]!;
    const s0 = ((a >>> 7) | (a << 25)) ^ ((a >>> 18) | (a << 14)) ^ (a >>> 3);
    const s1 = ((b >>> 17) | (b << 15)) ^ ((b >>> 19) | (b << 13)) ^ (b >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = state[0]!;
  let b = state[1]!;
  let c = state[2]!;
  let d = state[3]!;
  let e = state[4]!;
  let f = state[5]!;
  let g = state[6]!;
  let h = state[7]!;
  for (let i = 0; i < 64; i++) {
    const s1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + s1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0;
    const s0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (s0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  state[0] = (state[0]! + a) | 0;
  state[1] = (state[1]! + b) | 0;
  state[2] = (state[2]! + c) | 0;
  state[3] = (state[3]! + d) | 0;
  state[4] = (state[4]! + e) | 0;
  state[5] = (state[5]! + f) | 0;
  state[6] = (state[6]! + g) | 0;
  state[7] = (state[7]! + h) | 0;
}

/**
 * Hashes `data` into `state`, which holds the hash of `prefixBlocks` whole blocks already: the remaining full
 * blocks, then the padding (0x80, zeros, the message's length in bits as a 64-bit big-endian number).
 */
function finish(state: Int32Array, data: Uint8Array, prefixBlocks: number): void {
  const length = data.length;
  let at = 0;
  for (; length - at >= BLOCK; at += BLOCK) {
    load(data, at);
    compress(state);
  }
  const rest = length - at;
  const blocks = rest < BLOCK - 8 ? 1 : 2;
  const end = blocks * BLOCK;
  tail.fill(0, rest, end);
  for (let i = 0; i < rest; i++) tail[i] = data[at + i]!;
  tail[rest] = 0x80;
  const bits = (prefixBlocks * BLOCK + length) * 8;
  const high = Math.floor(bits / 0x1_0000_0000);
  tail[end - 8] = high >>> 24;
  tail[end - 7] = high >>> 16;
  tail[end - 6] = high >>> 8;
  tail[end - 5] = high;
  tail[end - 4] = bits >>> 24;
  tail[end - 3] = bits >>> 16;
  tail[end - 2] = bits >>> 8;
  tail[end - 1] = bits;
  load(tail, 0);
  compress(state);
  if (blocks === 2) {
    load(tail, BLOCK);
    compress(state);
  }
}

function digestOf(state: Int32Array): Uint8Array {
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) {
    const word = state[i]!;
    out[4 * i] = word >>> 24;
    out[4 * i + 1] = word >>> 16;
    out[4 * i + 2] = word >>> 8;
    out[4 * i + 3] = word;
  }
  return out;
}

/** SHA-256 of `data`. */
export function sha256(data: Uint8Array): Uint8Array {
  const state = IV.slice();
  finish(state, data, 0);
  return digestOf(state);
}

/** A Hasher for HMAC-SHA256 under `key` (any length: a key longer than a block is hashed first, as RFC 2104 says). */
export function createHasher(key: Uint8Array): Hasher {
  const padded = new Uint8Array(BLOCK);
  padded.set(key.length > BLOCK ? sha256(key) : key);
  // The states after the inner and outer padded keys: every value starts from these.
  const inner = IV.slice();
  const outer = IV.slice();
  const block = new Uint8Array(BLOCK);
  for (let i = 0; i < BLOCK; i++) block[i] = padded[i]! ^ 0x36;
  load(block, 0);
  compress(inner);
  for (let i = 0; i < BLOCK; i++) block[i] = padded[i]! ^ 0x5c;
  load(block, 0);
  compress(outer);
  padded.fill(0);
  block.fill(0);
  const state = new Int32Array(8);
  return {
    digest(data: Uint8Array): Uint8Array {
      state.set(inner);
      finish(state, data, 1);
      // The outer hash's message is the inner digest (32 bytes) after one block of key: one padded block.
      for (let i = 0; i < 8; i++) W[i] = state[i]!;
      W[8] = 0x80000000 | 0;
      for (let i = 9; i < 15; i++) W[i] = 0;
      W[15] = (BLOCK + 32) * 8;
      state.set(outer);
      compress(state);
      return digestOf(state);
    },
  };
}
