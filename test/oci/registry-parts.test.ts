import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseChallenges } from '../../src/oci/registry/challenge.ts';
import { registryError } from '../../src/oci/registry/errors.ts';
import { backoffDelay, defaultRetry, parseRetryAfter } from '../../src/oci/registry/retry.ts';
import { Semaphore } from '../../src/oci/registry/semaphore.ts';
import { TokenCache } from '../../src/oci/registry/token-cache.ts';
import { rechunk, verifiedChunks } from '../../src/oci/registry/upload.ts';
import { isLoopbackHost, nextLink, resolveLocation, withQuery } from '../../src/oci/registry/urls.ts';
import { sha256Digest } from '../../src/oci/digest.ts';
import { OciError } from '../../src/oci/errors.ts';

test('WWW-Authenticate challenges: bearer parameters, quoting, several challenges', () => {
  assert.deepEqual(parseChallenges('Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/ubuntu:pull"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.docker.io/token', service: 'registry.docker.io', scope: 'repository:library/ubuntu:pull' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="a \\"b\\"", Bearer realm="https://x/token", error=insufficient_scope'), [
    { scheme: 'basic', params: { realm: 'a "b"' } },
    { scheme: 'bearer', params: { realm: 'https://x/token', error: 'insufficient_scope' } },
  ]);
  assert.deepEqual(parseChallenges('Basic realm="registry"'), [{ scheme: 'basic', params: { realm: 'registry' } }]);
});

test('registry error bodies keep the registry code and name what was asked', () => {
  const body = JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'manifest unknown', detail: { Tag: 'v9' } }] });
  const error = registryError(404, body, 'docker://reg/app:v9', 'reg');
  assert.equal(error.code, 'MANIFEST_UNKNOWN');
  assert.match(error.message, /^docker:\/\/reg\/app:v9: manifest unknown/);
  assert.equal(registryError(401, '', 'docker://reg/app', 'reg').code, 'UNAUTHORIZED');
  assert.match(registryError(401, '', 'docker://reg/app', 'reg').hint ?? '', /credentials for reg/);
  const foreign = registryError(400, JSON.stringify({ errors: [{ code: 'MANIFEST_UNVERIFIED', message: 'bad' }] }), 's', 'reg');
  assert.equal(foreign.code, 'REGISTRY_ERROR');
  assert.match(foreign.message, /\[MANIFEST_UNVERIFIED\]/);
});

test('Retry-After in seconds or as a date; backoff grows and stays bounded', () => {
  assert.equal(parseRetryAfter('2'), 2000);
  assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 7_000), 3000);
  assert.equal(parseRetryAfter(null), undefined);
  assert.equal(parseRetryAfter('soon'), undefined);
  assert.equal(backoffDelay(0, defaultRetry, () => 1), defaultRetry.baseDelayMs);
  assert.equal(backoffDelay(3, defaultRetry, () => 1), defaultRetry.baseDelayMs * 8);
  assert.equal(backoffDelay(30, defaultRetry, () => 1), defaultRetry.maxDelayMs);
  assert.equal(backoffDelay(30, defaultRetry, () => 0), 0);
});

test('Locations: relative ones resolve, their query is kept when the digest is added', () => {
  const location = resolveLocation('/v2/a/blobs/uploads/uuid?_state=ab%2Bc%3D%3D', 'http://127.0.0.1:5000/v2/a/blobs/uploads/');
  assert.equal(withQuery(location, { digest: 'sha256:00' }).href, 'http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=ab%2Bc%3D%3D&digest=sha256%3A00');
  assert.equal(withQuery(new URL('http://h/u'), { digest: 'd' }).href, 'http://h/u?digest=d');
  assert.equal(nextLink('</v2/a/tags/list?last=b&n=2>; rel="next"', 'http://h:1/v2/a/tags/list?n=2')?.href, 'http://h:1/v2/a/tags/list?last=b&n=2');
  assert.equal(nextLink(null, 'http://h'), undefined);
});

test('loopback hosts are recognised for plain http', () => {
  for (const host of ['127.0.0.1:5000', 'localhost', 'localhost:80', '[::1]:5000', '127.1.2.3']) assert.ok(isLoopbackHost(host), host);
  for (const host of ['registry.example', '10.0.0.1:5000', 'localhost.example']) assert.ok(!isLoopbackHost(host), host);
});

test('uploads are cut into exact chunks and a lying source fails before its last byte', async () => {
  async function* source() {
    yield Buffer.from('abc');
    yield Buffer.from('defgh');
  }
  const chunks: string[] = [];
  for await (const chunk of rechunk(source(), 3)) chunks.push(Buffer.from(chunk).toString());
  assert.deepEqual(chunks, ['abc', 'def', 'gh']);
  const wrong = { mediaType: 'x', digest: sha256Digest('abcdefgX'), size: 8 };
  const sent: string[] = [];
  await assert.rejects(async () => {
    for await (const chunk of verifiedChunks(source(), wrong, 'blob')) sent.push(Buffer.from(chunk).toString());
  }, (error: unknown) => error instanceof OciError && error.code === 'DIGEST_MISMATCH');
  assert.deepEqual(sent, ['abc']);
});

test('the semaphore lets at most its limit run at once and hands slots over in order', async () => {
  const semaphore = new Semaphore(2);
  let active = 0;
  let peak = 0;
  const order: number[] = [];
  const opens: Array<() => void> = [];
  const gates = Array.from({ length: 5 }, () => new Promise<void>((resolve) => opens.push(resolve)));
  const tasks = gates.map(async (gate, index) => {
    const release = await semaphore.acquire();
    active++;
    peak = Math.max(peak, active);
    order.push(index);
    await gate;
    active--;
    release();
    release(); // a second release is harmless
  });
  for (const open of opens) {
    await new Promise((resolve) => setImmediate(resolve));
    open();
  }
  await Promise.all(tasks);
  assert.equal(peak, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
  assert.throws(() => new Semaphore(0), RangeError);
});

test('tokens are reused for the same or lesser scopes of the same credential until they expire', async () => {
  let now = 1000;
  const cache = new TokenCache(() => now);
  const pushPull = [{ repository: 'a', actions: ['pull' as const, 'push' as const] }];
  const pull = [{ repository: 'a', actions: ['pull' as const] }];
  cache.set('alice', pushPull, Promise.resolve({ token: 't1', expiresAt: 2000 }));
  await Promise.resolve();
  assert.equal((await cache.get('alice', pull))?.token, 't1');
  assert.equal(cache.get('bob', pull), undefined);
  assert.equal(cache.get('alice', [{ repository: 'b', actions: ['pull'] }]), undefined);
  cache.set('alice', [...pull, { repository: 'b', actions: ['pull'] }], Promise.reject(new Error('refused')));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(cache.get('alice', [{ repository: 'b', actions: ['pull'] }]), undefined, 'a failed fetch is not cached');
  cache.forget(pull);
  assert.equal(cache.get('alice', pull), undefined);
  cache.set('alice', pull, Promise.resolve({ token: 't2', expiresAt: 2000 }));
  await Promise.resolve();
  now = 2000;
  assert.equal(cache.get('alice', pull), undefined, 'expired');
});
