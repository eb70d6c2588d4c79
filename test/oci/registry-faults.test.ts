import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, test } from 'node:test';
import { OciError } from '../../src/oci/errors.ts';
import { LayoutStore } from '../../src/oci/layout.ts';
import { maxManifestBytes } from '../../src/oci/manifest.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { startFaultyProxy, type FaultyProxy } from '../services/faulty-proxy.ts';
import { makeImage, makeLayer, writeImage, type BuiltImage } from '../services/images.ts';
import { startOrSkip, startRegistry } from '../services/registry.ts';

// relativeurls: every upload below also proves that relative Locations are followed.
const { service: registry, skip } = await startOrSkip(() => startRegistry({ relativeUrls: true }));
const proxy: FaultyProxy | undefined = registry === undefined ? undefined : await startFaultyProxy(registry.url);
const scratch = await mkdtemp(join(tmpdir(), 'restack-faults-'));
after(async () => {
  await proxy?.stop();
  await registry?.stop();
  await rm(scratch, { recursive: true, force: true });
});

let waits: number[] = [];
let store: RegistryStore;
beforeEach(() => {
  proxy?.clear();
  waits = [];
  store = new RegistryStore(proxy?.host ?? 'unused', { credentials: async () => undefined, sleep: async (ms) => void waits.push(ms), retry: { attempts: 4 } });
});

const isOciError = (code: string, pattern: RegExp = /./) => (error: unknown) => error instanceof OciError && error.code === code && pattern.test(error.message);
const errorBody = (code: string) => JSON.stringify({ errors: [{ code, message: `injected ${code}` }] });

async function pushed(repository: string, files: Record<string, string | Uint8Array>): Promise<BuiltImage> {
  const image = makeImage({ layers: [await makeLayer(files)] });
  await writeImage(new RegistryStore(registry!.host, { credentials: async () => undefined }), repository, image, 'v1');
  return image;
}

async function drain(stream: AsyncIterable<unknown>): Promise<void> {
  for await (const _chunk of stream) {
    // consume
  }
}

describe('RegistryStore against a misbehaving registry', { skip }, () => {
  test('the registry answers uploads with relative Locations', async () => {
    const response = await fetch(`${registry!.url}/v2/faults/relative/blobs/uploads/`, { method: 'POST' });
    assert.equal(response.status, 202);
    assert.match(response.headers.get('location') ?? '', /^\/v2\//);
  });

  test('500 three times, then 201: the manifest PUT is retried and succeeds', async () => {
    proxy!.inject({ method: 'PUT', path: '/manifests/sha256:', times: 3, fault: { kind: 'status', status: 500, body: errorBody('UNKNOWN') } });
    const image = makeImage({ layers: [await makeLayer({ a: 'retry' })] });
    await writeImage(store, 'faults/retry', image, 'v1');
    const manifestPuts = proxy!.requests.filter((request) => request.method === 'PUT' && request.path.includes('/manifests/sha256:'));
    assert.deepEqual(manifestPuts.map((request) => request.outcome), [500, 500, 500, 201]);
    assert.equal(store.stats.retries, 3);
    assert.equal(waits.length, 3);
    assert.equal((await store.resolve('faults/retry', 'v1')).digest, image.manifestDescriptor.digest);
  });

  test('a 500 that does not stop becomes an error naming the repository', async () => {
    proxy!.inject({ method: 'HEAD', path: '/manifests/v1', fault: { kind: 'status', status: 503 } });
    await assert.rejects(store.resolve('faults/down', 'v1'), isOciError('REGISTRY_ERROR', /faults\/down:v1: HTTP 503/));
    assert.equal(waits.length, 3);
  });

  test('429 waits as long as Retry-After says', async () => {
    const image = await pushed('faults/busy', { a: 'busy' });
    proxy!.inject({ method: 'GET', path: '/manifests/v1', times: 1, fault: { kind: 'status', status: 429, headers: { 'retry-after': '2' }, body: errorBody('TOOMANYREQUESTS') } });
    const fetched = await store.getManifest('faults/busy', 'v1');
    assert.equal(fetched.descriptor.digest, image.manifestDescriptor.digest);
    assert.deepEqual(waits, [2000]);
  });

  test('a Retry-After beyond the allowed wait is TOOMANYREQUESTS at once', async () => {
    proxy!.inject({ method: 'GET', path: '/manifests/v1', fault: { kind: 'status', status: 429, headers: { 'retry-after': '3600' }, body: errorBody('TOOMANYREQUESTS') } });
    await assert.rejects(store.getManifest('faults/busy', 'v1'), (error: unknown) => isOciError('TOOMANYREQUESTS')(error) && /rate limiting/.test((error as OciError).hint ?? ''));
    assert.deepEqual(waits, []);
  });

  test('a reset connection is retried', async () => {
    const image = await pushed('faults/reset', { a: 'reset' });
    proxy!.inject({ method: 'GET', path: '/blobs/', times: 1, fault: { kind: 'reset' } });
    assert.deepEqual(Buffer.from(await store.readBlob('faults/reset', image.configDescriptor)), Buffer.from(image.configBytes));
    assert.deepEqual(proxy!.requests.filter((request) => request.path.includes('/blobs/')).map((request) => request.outcome), ['reset', 200]);
  });

  test('a lying registry: substituted bytes are DIGEST_MISMATCH and nothing is written', async () => {
    const image = await pushed('faults/lying', { 'bin/tool': randomBytes(4096) });
    const layer = image.manifest.layers[0]!;
    const flip = (original: Buffer) => {
      const copy = Buffer.from(original);
      copy.writeUInt8(copy.readUInt8(100) ^ 0x01, 100);
      return copy;
    };
    proxy!.inject({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'substitute', body: flip } });
    const layout = new LayoutStore(join(scratch, 'lying'));
    await assert.rejects(store.readBlob('faults/lying', layer), isOciError('DIGEST_MISMATCH'));
    const stream = await store.openBlob('faults/lying', layer);
    await assert.rejects(layout.putBlob('', layer, () => stream), isOciError('DIGEST_MISMATCH'));
    assert.equal(await layout.hasBlob('', layer), false);

    proxy!.inject({ method: 'GET', path: '/manifests/', fault: { kind: 'substitute', body: (original) => Buffer.from(original.toString().replace('"layers"', ' "layers"')) } });
    await assert.rejects(store.getManifest('faults/lying', image.manifestDescriptor.digest), isOciError('DIGEST_MISMATCH'));
    // By tag, the registry's own Docker-Content-Digest gives the lie away.
    await assert.rejects(store.getManifest('faults/lying', 'v1'), isOciError('DIGEST_MISMATCH'));
  });

  test('a truncated blob is an error, streamed or whole; once-truncated reads are retried', async () => {
    const image = await pushed('faults/truncated', { 'bin/tool': randomBytes(8192) });
    const layer = image.manifest.layers[0]!;
    proxy!.inject({ method: 'GET', path: `/blobs/${layer.digest}`, times: 1, fault: { kind: 'truncate', keepBytes: 1000 } });
    assert.equal((await store.readBlob('faults/truncated', layer)).length, layer.size);
    proxy!.inject({ method: 'GET', path: `/blobs/${layer.digest}`, fault: { kind: 'truncate', keepBytes: 1000 } });
    await assert.rejects(store.readBlob('faults/truncated', layer), isOciError('SIZE_MISMATCH', /truncated/));
    await assert.rejects(async () => drain(await store.openBlob('faults/truncated', layer)), isOciError('SIZE_MISMATCH', /truncated/));
  });

  test('schema1 manifests are refused with a clear error', async () => {
    const schema1 = JSON.stringify({ schemaVersion: 1, name: 'faults/old', tag: 'v1', architecture: 'amd64', fsLayers: [], history: [], signatures: [] });
    const headers = { 'content-type': MediaType.dockerSchema1Signed, 'docker-content-digest': `sha256:${'0'.repeat(64)}` };
    proxy!.inject({ path: '/manifests/v1', fault: { kind: 'status', status: 200, headers, body: schema1 } });
    await assert.rejects(store.getManifest('faults/old', 'v1'), (error: unknown) => isOciError('MANIFEST_UNSUPPORTED', /faults\/old:v1: Docker schema1/)(error) && /skopeo copy --format v2s2/.test((error as OciError).hint ?? ''));
    await assert.rejects(store.resolve('faults/old', 'v1'), isOciError('MANIFEST_UNSUPPORTED', /schema1/));
  });

  test('a manifest over 4 MiB is refused without reading it', async () => {
    const huge = Buffer.alloc(maxManifestBytes + 1024, 0x20);
    proxy!.inject({ path: '/manifests/v1', fault: { kind: 'status', status: 200, headers: { 'content-type': MediaType.ociManifest }, body: huge } });
    await assert.rejects(store.getManifest('faults/huge', 'v1'), isOciError('MANIFEST_TOO_LARGE', /faults\/huge:v1/));
    assert.ok(store.stats.otherBytesReceived < 1024 * 1024);
  });

  test('a registry that declines a mount gets the bytes streamed from the source repository', async () => {
    const image = await pushed('faults/mount-source', { 'bin/tool': randomBytes(20_000) });
    const layer = image.manifest.layers[0]!;
    proxy!.inject({ method: 'POST', path: '?mount=', fault: { kind: 'rewrite', path: (path) => path.slice(0, path.indexOf('?')) } });
    assert.equal(await store.mountBlob('faults/mount-target', layer, 'faults/mount-source'), 'uploaded');
    assert.equal(store.stats.blobBytesSent, layer.size);
    assert.equal(store.stats.blobBytesReceived, layer.size);
    assert.ok(await store.hasBlob('faults/mount-target', layer));
  });

  test('tag lists are followed across Link pages (n=2 over 5 tags)', async () => {
    const page = (tags: string[], next?: string) => ({
      kind: 'status' as const,
      status: 200,
      headers: { 'content-type': 'application/json', ...(next === undefined ? {} : { link: `<${next}>; rel="next"` }) },
      body: JSON.stringify({ name: 'faults/paged', tags }),
    });
    proxy!.inject({ path: 'last=b', fault: page(['c', 'd'], '/v2/faults/paged/tags/list?n=2&last=d') });
    proxy!.inject({ path: 'last=d', fault: page(['e']) });
    proxy!.inject({ path: '/tags/list?n=2', fault: page(['a', 'b'], '/v2/faults/paged/tags/list?n=2&last=b') });
    const paged = new RegistryStore(proxy!.host, { credentials: async () => undefined, tagPageSize: 2 });
    assert.deepEqual(await paged.listTags('faults/paged'), ['a', 'b', 'c', 'd', 'e']);
    assert.deepEqual(proxy!.requests.map((request) => request.path).filter((path) => path !== '/v2/'), [
      '/v2/faults/paged/tags/list?n=2',
      '/v2/faults/paged/tags/list?n=2&last=b',
      '/v2/faults/paged/tags/list?n=2&last=d',
    ]);
  });
});

describe('RegistryStore uploads and answer sizes against a misbehaving registry', { skip }, () => {
  test('stores of one registry share its /v2/ ping (the operator opens one per swap); a failed ping is asked again', async () => {
    const fresh = await startFaultyProxy(registry!.url);
    try {
      const image = makeImage({ layers: [await makeLayer({ a: 'ping once' })] });
      await writeImage(new RegistryStore(registry!.host, { credentials: async () => undefined }), 'faults/ping', image, 'v1');
      fresh.inject({ path: '/v2/', times: 1, fault: { kind: 'reset' } });
      const storeOf = () => new RegistryStore(fresh.host, { credentials: async () => undefined, retry: { attempts: 1 } });
      await assert.rejects(storeOf().resolve('faults/ping', 'v1'), isOciError('UNREACHABLE'));
      for (let store = 0; store < 3; store++) assert.equal((await storeOf().resolve('faults/ping', 'v1')).digest, image.manifestDescriptor.digest);
      assert.deepEqual(fresh.requests.map((request) => `${request.method} ${request.path}`), [
        'GET /v2/',
        'GET /v2/',
        ...Array.from({ length: 3 }, () => 'HEAD /v2/faults/ping/manifests/v1'),
      ]);
    } finally {
      await fresh.stop();
    }
  });

  test('a closing PUT whose session is gone sends the blob again in a new session', async () => {
    const layer = await makeLayer({ 'bin/tool': randomBytes(5_000) });
    proxy!.inject({ method: 'PUT', path: '/blobs/uploads/', times: 1, fault: { kind: 'status', status: 404, body: errorBody('BLOB_UPLOAD_UNKNOWN') } });
    assert.equal(await store.putBlob('faults/session', layer.descriptor, layer.bytes), 'uploaded');
    assert.ok(await store.hasBlob('faults/session', layer.descriptor));
    assert.equal(proxy!.requests.filter((request) => request.method === 'POST').length, 2, 'a second session was opened');
  });

  test('a PATCH the registry no longer accepts at its Location restarts the chunked upload in a new session', async () => {
    const chunked = new RegistryStore(proxy!.host, { credentials: async () => undefined, sleep: async () => {}, chunkedUploadThreshold: 1024, chunkSize: 1024 });
    const layer = await makeLayer({ 'bin/big': randomBytes(5_000) });
    proxy!.inject({ method: 'PATCH', path: '/blobs/uploads/', times: 1, fault: { kind: 'status', status: 416, body: errorBody('RANGE_INVALID') } });
    assert.equal(await chunked.putBlob('faults/chunked', layer.descriptor, layer.bytes), 'uploaded');
    assert.ok(await chunked.hasBlob('faults/chunked', layer.descriptor));
  });

  test('a small blob is offered whole in the POST (?digest=); a registry that opens a session instead gets it there, and no body twice after', async () => {
    const [first, second] = [await makeLayer({ a: 'monolithic 1' }), await makeLayer({ a: 'monolithic 2' })];
    assert.equal(await store.putBlob('faults/monolithic', first.descriptor, first.bytes), 'uploaded');
    assert.equal(await store.putBlob('faults/monolithic', second.descriptor, second.bytes), 'uploaded');
    assert.ok(await store.hasBlob('faults/monolithic', first.descriptor));
    assert.ok(await store.hasBlob('faults/monolithic', second.descriptor));
    const posts = proxy!.requests.filter((request) => request.method === 'POST').map((request) => request.path);
    assert.deepEqual(posts, [`/v2/faults/monolithic/blobs/uploads/?digest=${encodeURIComponent(first.descriptor.digest)}`, '/v2/faults/monolithic/blobs/uploads/']);
    assert.equal(proxy!.requests.filter((request) => request.method === 'PUT').length, 2, 'docker-registry 2.8 ignores the body: each blob is PUT into the session');
  });

  test('a registry that stores a blob sent whole (201 to POST ?digest=) gets a small blob in one request', async () => {
    const layer = await makeLayer({ a: 'monolithic 201' });
    proxy!.inject({ method: 'POST', path: /\/blobs\/uploads\/\?digest=/, fault: { kind: 'status', status: 201, headers: { location: `/v2/faults/whole/blobs/${layer.descriptor.digest}` } } });
    assert.equal(await store.putBlob('faults/whole', layer.descriptor, layer.bytes), 'uploaded');
    assert.deepEqual(proxy!.requests.filter((request) => request.path.startsWith('/v2/faults/')).map((request) => request.method), ['POST']);
  });

  test('an upload that keeps failing gives up after a few sessions with the registry error', async () => {
    const layer = await makeLayer({ 'bin/tool': randomBytes(5_000) });
    proxy!.inject({ method: 'PUT', path: '/blobs/uploads/', fault: { kind: 'status', status: 404, body: errorBody('BLOB_UPLOAD_UNKNOWN') } });
    await assert.rejects(store.putBlob('faults/gone', layer.descriptor, layer.bytes), isOciError('BLOB_UPLOAD_UNKNOWN', /faults\/gone/));
    assert.equal(proxy!.requests.filter((request) => request.method === 'POST').length, 3);
  });

  test('error and tag list answers are read only so far', async () => {
    const huge = Buffer.alloc(20 * 1024 * 1024, 0x20);
    proxy!.inject({ path: '/manifests/v1', fault: { kind: 'status', status: 404, body: Buffer.concat([Buffer.from(errorBody('MANIFEST_UNKNOWN')), huge]) } });
    await assert.rejects(store.getManifest('faults/errbody', 'v1'), isOciError('MANIFEST_UNKNOWN'));
    assert.ok(store.stats.otherBytesReceived < 1024 * 1024, `error body read: ${store.stats.otherBytesReceived} bytes`);
    proxy!.inject({ path: '/tags/list', fault: { kind: 'status', status: 200, headers: { 'content-type': 'application/json' }, body: huge } });
    await assert.rejects(store.listTags('faults/tags'), isOciError('REGISTRY_ERROR', /faults\/tags.*more than the 8388608/));
  });
});
