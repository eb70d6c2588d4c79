import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';
import { sha256Digest } from '../../src/oci/digest.ts';
import { OciError } from '../../src/oci/errors.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import { readImage } from '../../src/oci/open.ts';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { makeImage, makeIndex, makeLayer, validateImage, writeImage, writeIndex } from '../services/images.ts';
import { startOrSkip, startRegistry } from '../services/registry.ts';
import { freeLoopbackPort } from '../services/service.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());
after(() => registry?.stop());

const anonymous = async () => undefined;
const open = (options: ConstructorParameters<typeof RegistryStore>[1] = {}) => new RegistryStore(registry!.host, { credentials: anonymous, ...options });
const isOciError = (code: string, pattern: RegExp = /./) => (error: unknown) => error instanceof OciError && error.code === code && pattern.test(error.message);

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('RegistryStore against docker-registry', { skip }, () => {
  test('pushes a small image (blobs, config, manifest, tag) and reads it back verified', async () => {
    const store = open();
    const image = makeImage({ layers: [await makeLayer({ 'etc/hello': 'hello\n' }), await makeLayer({ 'usr/share/doc': 'doc' })], annotations: { 'org.example': 'yes' } });
    const descriptor = await writeImage(store, 'push/small', image, 'v1');
    assert.equal(descriptor.digest, image.manifestDescriptor.digest);
    const blobBytes = image.blobs.reduce((sum, blob) => sum + blob.bytes.length, 0);
    // the first small blob is offered whole in its POST, which docker-registry 2.8 ignores: it is sent again in the session
    assert.equal(store.stats.blobBytesSent, blobBytes + (image.blobs[0]?.bytes.length ?? 0));

    const read = await validateImage(store, 'push/small', 'v1');
    assert.deepEqual(Buffer.from(read.manifestBytes), Buffer.from(image.manifestBytes));
    assert.deepEqual(Buffer.from(read.configBytes), Buffer.from(image.configBytes));
    assert.equal(read.manifest.annotations?.['org.example'], 'yes');
    assert.deepEqual(await store.listTags('push/small'), ['v1']);
    // Pushing again sends no blob the registry has, except those small enough (up to 64 KiB) that
    // uploading them is cheaper than asking first.
    store.stats.reset();
    await writeImage(store, 'push/small', image, 'v1');
    assert.equal(store.stats.blobBytesSent, blobBytes);
    assert.equal(store.stats.requestsByMethod['HEAD'], undefined);
    const large = makeImage({ layers: [await makeLayer({ 'big.bin': randomBytes(100 * 1024) }, { compression: 'none' })] });
    await writeImage(store, 'push/large', large, 'v1');
    store.stats.reset();
    await writeImage(store, 'push/large', large, 'v1');
    assert.equal(store.stats.blobBytesSent, large.configBytes.length, 'the large layer is found present and not sent again');
  });

  test('resolves a tag with a single HEAD', async () => {
    const store = open();
    const image = makeImage({ layers: [await makeLayer({ a: 'head' })] });
    await writeImage(store, 'push/head', image, 'v1');
    store.stats.reset();
    const resolved = await store.resolve('push/head', 'v1');
    assert.deepEqual(resolved, { mediaType: MediaType.ociManifest, digest: image.manifestDescriptor.digest, size: image.manifestBytes.length });
    assert.deepEqual(store.stats.requestsByMethod, { HEAD: 1 });
    assert.deepEqual(await store.resolve('push/head', resolved.digest), resolved);
  });

  test('a Docker schema2 image round-trips with its media types', async () => {
    const store = open();
    const image = makeImage({ format: 'docker', layers: [await makeLayer({ a: 'docker' })] });
    await writeImage(store, 'push/docker', image, 'v1');
    const read = await validateImage(store, 'push/docker', 'v1');
    assert.equal(read.manifestDescriptor.mediaType, MediaType.dockerManifest);
    assert.equal(read.manifest.layers[0]?.mediaType, MediaType.dockerLayerGzip);
    assert.equal(read.manifest.config.mediaType, MediaType.dockerConfig);
  });

  test('an index: the default platform is chosen, attestations skipped, others on request', async () => {
    const store = open();
    const amd64 = makeImage({ layers: [await makeLayer({ arch: 'amd64' })] });
    const arm64 = makeImage({ architecture: 'arm64', variant: 'v8', layers: [await makeLayer({ arch: 'arm64' })] });
    const attestation = makeImage({ layers: [] });
    await writeImage(store, 'push/multi', attestation);
    const index = makeIndex([arm64, amd64], [{ ...attestation.manifestDescriptor, platform: { os: 'unknown', architecture: 'unknown' } }]);
    await writeIndex(store, 'push/multi', [amd64, arm64], index, 'v1');
    const fetched = await store.getManifest('push/multi', 'v1');
    assert.equal(fetched.descriptor.mediaType, MediaType.ociIndex);
    const chosen = await readImage(store, 'push/multi', 'v1', { os: 'linux', architecture: 'amd64' });
    assert.equal(chosen.manifestDescriptor.digest, amd64.manifestDescriptor.digest);
    const arm = await readImage(store, 'push/multi', 'v1', { os: 'linux', architecture: 'arm64' });
    assert.equal(arm.config.architecture, 'arm64');
    await assert.rejects(readImage(store, 'push/multi', 'v1', { os: 'linux', architecture: 's390x' }), isOciError('PLATFORM_NOT_FOUND'));
  });

  test('large streamed blobs go up in PATCH chunks and come back intact', async () => {
    const store = open({ chunkedUploadThreshold: 1024 * 1024, chunkSize: 1024 * 1024 });
    const bytes = randomBytes(3.5 * 1024 * 1024);
    const descriptor = { mediaType: MediaType.ociLayerTar, digest: sha256Digest(bytes), size: bytes.length };
    // Small pieces, as a real file stream gives them.
    const source = () => Readable.from((function* () {
      for (let offset = 0; offset < bytes.length; offset += 64 * 1024) yield bytes.subarray(offset, offset + 64 * 1024);
    })());
    assert.equal(await store.putBlob('push/chunked', descriptor, source), 'uploaded');
    assert.equal(store.stats.requestsByMethod['PATCH'], 4);
    assert.equal(store.stats.blobBytesSent, bytes.length);
    assert.ok(await store.hasBlob('push/chunked', descriptor));
    assert.deepEqual(await drain(await store.openBlob('push/chunked', descriptor)), bytes);
  });

  test('a blob larger than any buffered answer is found by HEAD, and written once: a second write finds it present', async () => {
    const store = open();
    const bytes = randomBytes(9 * 1024 * 1024);
    const descriptor = { mediaType: MediaType.ociLayerTar, digest: sha256Digest(bytes), size: bytes.length };
    assert.equal(await store.putBlob('push/large', descriptor, bytes), 'uploaded');
    // The HEAD answers Content-Length: 9 MiB and no body.
    assert.ok(await store.hasBlob('push/large', descriptor));
    assert.equal(await store.putBlob('push/large', descriptor, () => Readable.from([bytes])), 'present');
  });

  test('a streamed source that does not match its digest is never completed', async () => {
    const store = open({ chunkedUploadThreshold: 1024 * 1024, chunkSize: 512 * 1024 });
    const bytes = randomBytes(1536 * 1024);
    const descriptor = { mediaType: MediaType.ociLayerTar, digest: sha256Digest('something else'), size: bytes.length };
    await assert.rejects(store.putBlob('push/lying-source', descriptor, () => Readable.from([bytes])), isOciError('DIGEST_MISMATCH'));
    const small = { mediaType: MediaType.ociLayerTar, digest: sha256Digest('other'), size: 5 };
    await assert.rejects(store.putBlob('push/lying-source', small, () => Readable.from([Buffer.from('wrong')])), isOciError('DIGEST_MISMATCH'));
    assert.equal(await store.hasBlob('push/lying-source', descriptor), false);
    assert.equal(await store.hasBlob('push/lying-source', small), false);
  });

  test('a blob larger than any buffered answer is found present by HEAD (its Content-Length is not a body)', async () => {
    const store = open();
    const layer = await makeLayer({ 'big.bin': randomBytes(9 * 1024 * 1024) }, { compression: 'none' });
    await store.putBlob('push/head-large', layer.descriptor, layer.bytes);
    assert.equal(await store.hasBlob('push/head-large', layer.descriptor), true);
  });

  test('a cross-repository mount links the blob without sending it', async () => {
    const store = open();
    const image = makeImage({ layers: [await makeLayer({ 'big/file': randomBytes(100_000) })] });
    await writeImage(store, 'mount/source', image, 'v1');
    store.stats.reset();
    for (const blob of image.blobs) assert.equal(await store.mountBlob('mount/target', blob.descriptor, 'mount/source'), 'mounted');
    assert.equal(store.stats.blobBytesSent, 0);
    await store.tag('mount/target', 'v1', await store.putManifest('mount/target', image.manifestBytes, MediaType.ociManifest));
    await validateImage(store, 'mount/target', 'v1');
    await assert.rejects(store.mountBlob('mount/other', { mediaType: 'x', digest: sha256Digest('absent'), size: 6 }, 'mount/source'), isOciError('BLOB_UNKNOWN'));
  });

  test('tags are listed (sorted); docker-registry 2.8 ignores ?n= and answers in one page', async () => {
    const store = open({ tagPageSize: 2 });
    const descriptor = await writeImage(store, 'tags/all', makeImage({ layers: [] }));
    for (const tag of ['e', 'b', 'd', 'a', 'c']) await store.tag('tags/all', tag, descriptor);
    assert.deepEqual(await store.listTags('tags/all'), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(await store.listTags('tags/never-pushed'), []);
  });

  test('errors carry the registry code and name registry, repository and reference', async () => {
    const store = open();
    await assert.rejects(store.getManifest('errors/none', 'v404'), isOciError('MANIFEST_UNKNOWN', new RegExp(`^docker://${registry!.host}/errors/none:v404: `)));
    await assert.rejects(store.resolve('errors/none', 'v404'), isOciError('MANIFEST_UNKNOWN', /errors\/none:v404/));
    const image = makeImage({ layers: [await makeLayer({ a: 'missing blobs' })] });
    await assert.rejects(store.putManifest('errors/none', image.manifestBytes, MediaType.ociManifest), isOciError('MANIFEST_BLOB_UNKNOWN', /errors\/none@sha256:/));
    await assert.rejects(store.readBlob('errors/none', image.blobs[1]!.descriptor), isOciError('BLOB_UNKNOWN'));
  });

  test('a manifest over 4 MiB is refused before anything is sent', async () => {
    const store = open();
    const image = makeImage({ layers: [], annotations: { padding: 'x'.repeat(4 * 1024 * 1024) } });
    await assert.rejects(store.putManifest('errors/big', image.manifestBytes, MediaType.ociManifest), isOciError('MANIFEST_TOO_LARGE', /4 MiB/));
    assert.equal(store.stats.requests, 0);
  });

  test('a registry that is not running is UNREACHABLE after retries', async () => {
    const waits: number[] = [];
    const port = await freeLoopbackPort();
    const store = new RegistryStore(`127.0.0.1:${port}`, { credentials: anonymous, retry: { attempts: 3 }, sleep: async (ms) => void waits.push(ms) });
    await assert.rejects(store.resolve('x', 'y'), isOciError('UNREACHABLE', new RegExp(`127\\.0\\.0\\.1:${port}.*after 3 tries \\(ECONNREFUSED\\)`)));
    assert.equal(waits.length, 2);
  });
});
