import assert from 'node:assert/strict';
import { after, beforeEach, describe, test } from 'node:test';
import { AdaptiveLimit } from '../../src/oci/registry/adaptive-limit.ts';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { startFaultyProxy, type FaultyProxy } from '../services/faulty-proxy.ts';
import { makeImage, makeLayer, writeImage } from '../services/images.ts';
import { startOrSkip, startRegistry } from '../services/registry.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());
const proxy: FaultyProxy | undefined = registry === undefined ? undefined : await startFaultyProxy(registry.url);
after(async () => {
  await proxy?.stop();
  await registry?.stop();
});
beforeEach(() => proxy?.clear());

const anonymous = async () => undefined;
/** A store whose retries do not wait (no clock in these tests), `initial` requests in flight at first. */
const storeFor = (initial: number, max = 64) => new RegistryStore(proxy!.host, { credentials: anonymous, sleep: async () => {}, retry: { attempts: 10 }, concurrency: { initial, min: 1, max } });

describe('the concurrency limit adapts to the registry', { skip }, () => {
  test('grows while there is more work than slots and the registry answers well, up to its bound', async () => {
    const image = makeImage({ layers: [await makeLayer({ a: 'healthy' })] });
    await writeImage(new RegistryStore(registry!.host, { credentials: anonymous }), 'adapt/healthy', image, 'v1');
    const store = storeFor(2, 12);
    assert.equal(store.stats.concurrencyLimit, 2);
    await Promise.all(Array.from({ length: 300 }, () => store.resolve('adapt/healthy', 'v1')));
    assert.ok(store.stats.concurrencyLimit > 2, `limit ${store.stats.concurrencyLimit}`);
    assert.ok(store.stats.concurrencyLimit <= 12);
  });

  test('halves on 429 and on 503, never below its floor, and the work still gets done', async () => {
    const image = makeImage({ layers: [await makeLayer({ a: 'busy' })] });
    await writeImage(new RegistryStore(registry!.host, { credentials: anonymous }), 'adapt/busy', image, 'v1');
    for (const status of [429, 503]) {
      proxy!.clear();
      const store = storeFor(16);
      proxy!.inject({ method: 'HEAD', path: '/adapt/busy/manifests/v1', times: 60, fault: { kind: 'status', status, headers: { 'retry-after': '0' } } });
      const resolved = await Promise.all(Array.from({ length: 40 }, () => store.resolve('adapt/busy', 'v1')));
      assert.ok(resolved.every((descriptor) => descriptor.digest === image.manifestDescriptor.digest));
      assert.equal(proxy!.requests.filter((request) => request.outcome === status).length, 60);
      assert.ok(store.stats.concurrencyLimit < 16, `${status}: limit ${store.stats.concurrencyLimit}`);
      assert.ok(store.stats.concurrencyLimit >= 1);
    }
  });
});

describe('AdaptiveLimit', () => {
  test('one congestion event halves once: answers to requests sent before the decrease do not halve again', async () => {
    const limit = new AdaptiveLimit({ initial: 8, min: 2, max: 16 });
    const releases = await Promise.all(Array.from({ length: 8 }, () => limit.acquire()));
    for (const release of releases) release('overloaded');
    assert.equal(limit.limit, 4);
    for (let round = 0; round < 3; round++) (await limit.acquire())('overloaded');
    assert.equal(limit.limit, 2, 'the floor holds');
    assert.throws(() => new AdaptiveLimit({ initial: 1, min: 2, max: 4 }), /1 <= min <= initial <= max/);
  });

  test('never lets more than the limit in flight', async () => {
    const limit = new AdaptiveLimit({ initial: 3, min: 1, max: 3 });
    let inFlight = 0;
    let peak = 0;
    await Promise.all(Array.from({ length: 50 }, async () => {
      const release = await limit.acquire();
      peak = Math.max(peak, ++inFlight);
      await new Promise((resolve) => setImmediate(resolve));
      inFlight--;
      release('ok');
    }));
    assert.equal(peak, 3);
  });
});
