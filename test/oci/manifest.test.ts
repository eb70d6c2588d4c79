import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OciError } from '../../src/oci/errors.ts';
import { maxManifestBytes, parseManifest } from '../../src/oci/manifest.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import { choosePlatform, defaultPlatform, parsePlatform } from '../../src/oci/platform.ts';
import type { Descriptor } from '../../src/oci/types.ts';

const digest = (char: string) => `sha256:${char.repeat(64)}`;
const json = (value: unknown) => Buffer.from(JSON.stringify(value));
const manifest = { schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, digest: digest('a'), size: 2 }, layers: [] };

function rejects(code: string, pattern: RegExp) {
  return (error: unknown) => error instanceof OciError && error.code === code && pattern.test(error.message);
}

test('an OCI manifest parses; the media type may come from the store when the body omits it', () => {
  assert.equal(parseManifest(json(manifest), undefined, 'm').mediaType, MediaType.ociManifest);
  const { mediaType: _omitted, ...bare } = manifest;
  assert.equal(parseManifest(json(bare), MediaType.dockerManifest, 'm').mediaType, MediaType.dockerManifest);
  assert.equal(parseManifest(json({ schemaVersion: 2, manifests: [] }), 'application/json', 'm').mediaType, MediaType.ociIndex);
});

test('schema1 is refused by media type or by schemaVersion, with a hint to re-push', () => {
  assert.throws(() => parseManifest(json({ schemaVersion: 1, name: 'x', fsLayers: [] }), MediaType.dockerSchema1Signed, 'old'), rejects('MANIFEST_UNSUPPORTED', /schema1/));
  assert.throws(() => parseManifest(json({ schemaVersion: 1 }), 'application/json', 'old'), rejects('MANIFEST_UNSUPPORTED', /schema1/));
});

test('manifests over 4 MiB are refused before parsing', () => {
  assert.throws(() => parseManifest(new Uint8Array(maxManifestBytes + 1), undefined, 'big'), rejects('MANIFEST_TOO_LARGE', /4 MiB/));
});

test('other media types and malformed manifests say what is wrong', () => {
  assert.throws(() => parseManifest(json({ ...manifest, mediaType: 'application/vnd.example+json' }), undefined, 'm'), rejects('MANIFEST_UNSUPPORTED', /vnd\.example/));
  assert.throws(() => parseManifest(json({ ...manifest, layers: 'no' }), undefined, 'm'), rejects('MANIFEST_INVALID', /layers/));
  assert.throws(() => parseManifest(Buffer.from('{'), undefined, 'm'), rejects('MANIFEST_INVALID', /JSON/));
});

test('choosing a platform skips attestations and explains what exists', () => {
  const entry = (architecture: string, os = 'linux', variant?: string): Descriptor => ({
    mediaType: MediaType.ociManifest,
    digest: digest(architecture === 'unknown' ? 'f' : architecture === 'amd64' ? 'b' : 'c'),
    size: 1,
    platform: { os, architecture, ...(variant === undefined ? {} : { variant }) },
  });
  const entries = [entry('unknown', 'unknown'), entry('amd64'), entry('arm64', 'linux', 'v8')];
  assert.equal(choosePlatform(entries, { os: 'linux', architecture: 'amd64' }, 'i').digest, digest('b'));
  assert.equal(choosePlatform(entries, parsePlatform('linux/arm64/v8'), 'i').digest, digest('c'));
  assert.equal(choosePlatform(entries, { os: 'linux', architecture: 'arm64' }, 'i').digest, digest('c'));
  assert.throws(() => choosePlatform(entries, parsePlatform('linux/s390x'), 'i'), (error: unknown) => error instanceof OciError && error.code === 'PLATFORM_NOT_FOUND' && /linux\/amd64, linux\/arm64\/v8/.test(error.hint ?? ''));
  assert.deepEqual(defaultPlatform('x64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(defaultPlatform('arm64'), { os: 'linux', architecture: 'arm64' });
});
