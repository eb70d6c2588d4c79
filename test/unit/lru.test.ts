import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LayerChangesCache } from '../../src/engine/layer-changes.ts';
import { LruCache } from '../../src/oci/lru.ts';
import { makeLayer } from '../services/images.ts';
import { open } from '../swap/seeds.ts';

test('the LRU cache evicts the least recently used until the weights fit, and keeps the newest even when it alone is over', () => {
  const cache = new LruCache<string, number>(5);
  cache.set('a', 1, 2);
  cache.set('b', 2, 2);
  assert.equal(cache.get('a'), 1, 'a is now the most recently used');
  cache.set('c', 3, 2);
  assert.deepEqual([cache.has('a'), cache.has('b'), cache.has('c')], [true, false, true]);
  assert.equal(cache.weight, 4);
  cache.set('a', 1, 3);
  assert.deepEqual([cache.size, cache.weight], [2, 5], 'a re-weighed in place');
  cache.set('huge', 0, 9);
  assert.deepEqual([cache.size, cache.weight, cache.has('huge')], [1, 9, true]);
  cache.delete('huge');
  assert.deepEqual([cache.size, cache.weight], [0, 0]);
});

test('layer listings stay within their bound of file entries however many layers a long-running operator sees', async () => {
  const layout = await mkdtemp(join(tmpdir(), 'restack-lru-'));
  try {
    const target = open(`oci:${layout}:layers`);
    const cache = new LayerChangesCache(undefined, { maxEntries: 20 });
    for (let i = 0; i < 12; i++) {
      const layer = await makeLayer({ [`srv/${i}/a`]: { type: 'file', content: Buffer.from(`${i}`) }, [`srv/${i}/b`]: { type: 'file', content: Buffer.from(`${i}`) } });
      await target.store.putBlob(target.repository, layer.descriptor, layer.bytes);
      const changes = await cache.get(target.store, target.repository, layer.descriptor);
      assert.ok('entries' in changes && changes.entries.length >= 2);
      await new Promise((resolve) => setImmediate(resolve));
      assert.ok(cache.size.entries <= 20, `after ${i + 1} layers: ${JSON.stringify(cache.size)}`);
    }
    assert.ok(cache.size.layers < 12 && cache.size.layers > 0, JSON.stringify(cache.size));
  } finally {
    await rm(layout, { recursive: true, force: true });
  }
});
