import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { LayerChangesCache } from '../../src/engine/layer-changes.ts';
import { deriveRecordKey, layerChangesKey, maxRecordBytes, recordedLayerChanges, recordLayerChanges, withoutLayerChanges } from '../../src/swap/layer-record.ts';
import type { LayerEntry } from '../../src/swap/safety.ts';
import { makeLayer } from '../services/images.ts';
import { open } from '../swap/seeds.ts';

const key = randomBytes(32);
const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${'a'.repeat(64)}`, size: 100 };
const entries: LayerEntry[] = [
  { path: 'srv', kind: 'directory' },
  { path: 'srv/a/app.py', kind: 'file' },
  { path: 'srv/a/hard', kind: 'file', link: 'usr/bin/python3' },
  { path: 'etc/old', kind: 'whiteout' },
  { path: 'var/cache', kind: 'opaque' },
];

test('a recorded layer reads back its entries under the same key', () => {
  const recorded = recordLayerChanges(layer, entries, key);
  assert.deepEqual(recordedLayerChanges(recorded, key), entries);
});

test('a record is ignored when it was not made by the key holder for this layer', () => {
  const recorded = recordLayerChanges(layer, entries, key);
  const text = recorded.annotations?.[layerChangesKey] ?? '';
  // a pusher who drops the path that overlaps keeps the old mac: it no longer verifies
  const forged = JSON.parse(text) as { entries: unknown[] };
  forged.entries = forged.entries.filter((entry) => (entry as string[])[1] !== 'srv/a/hard');
  assert.equal(recordedLayerChanges({ ...recorded, annotations: { [layerChangesKey]: JSON.stringify(forged) } }, key), undefined);
  // a genuine record copied onto another layer
  assert.equal(recordedLayerChanges({ ...recorded, digest: `sha256:${'b'.repeat(64)}` }, key), undefined);
  // another key (a pusher's own)
  assert.equal(recordedLayerChanges(recordLayerChanges(layer, [], randomBytes(32)), key), undefined);
  // garbage
  for (const value of ['', 'null', '{"v":1}', '{"v":1,"mac":"zz","entries":[]}', `{"v":1,"mac":"${'0'.repeat(64)}","entries":[["x","a"]]}`]) {
    assert.equal(recordedLayerChanges({ ...layer, annotations: { [layerChangesKey]: value } }, key), undefined, value);
  }
});

test('a listing too large to record leaves the descriptor as it was; a short key is refused', () => {
  const many = Array.from({ length: maxRecordBytes / 8 }, (_, index): LayerEntry => ({ path: `srv/file-${index}`, kind: 'file' }));
  assert.deepEqual(recordLayerChanges(layer, many, key), layer);
  assert.throws(() => recordLayerChanges(layer, entries, randomBytes(16)), /at least 32 bytes/);
});

test('tenant keys derived from one master differ per tenant and from the master, and a record signed under one does not verify under another', () => {
  const master = randomBytes(32);
  const team = deriveRecordKey(master, 'team-a/apps');
  assert.equal(team.length, 32);
  assert.deepEqual(deriveRecordKey(master, 'team-a/apps'), team, 'the same tenant gets the same key after a restart');
  for (const other of [deriveRecordKey(master, 'team-b/apps'), deriveRecordKey(master, 'team-a/apps2'), deriveRecordKey(randomBytes(32), 'team-a/apps'), master]) {
    assert.notDeepEqual(Buffer.from(other), Buffer.from(team));
    assert.equal(recordedLayerChanges(recordLayerChanges(layer, entries, team), other), undefined);
  }
  assert.throws(() => deriveRecordKey(randomBytes(16), 'team-a/apps'), /at least 32 bytes/);
});

test('a record replaces an earlier one, and withoutLayerChanges drops it and nothing else', () => {
  const annotated = { ...layer, annotations: { 'org.example/keep': 'yes' } };
  const once = recordLayerChanges(annotated, entries.slice(0, 1), randomBytes(32));
  const twice = recordLayerChanges(once, entries, key);
  assert.deepEqual(recordedLayerChanges(twice, key), entries);
  assert.equal(twice.annotations?.['org.example/keep'], 'yes');
  assert.deepEqual(withoutLayerChanges(twice), annotated);
  assert.deepEqual(withoutLayerChanges(recordLayerChanges(layer, entries, key)), layer);
  const many = Array.from({ length: 5000 }, (_, i) => ({ path: `srv/${'x'.repeat(20)}/${i}`, kind: 'file' as const }));
  assert.deepEqual(recordLayerChanges(twice, many, key), annotated, 'a record too large to write leaves no stale one behind');
});

test('the listing cache trusts a record under the key of the call only, and shares what it read from blobs alone', async () => {
  const layout = await mkdtemp(join(tmpdir(), 'restack-record-'));
  try {
    const target = open(`oci:${layout}:layers`);
    const built = await makeLayer({ 'srv/app': 'app\n' });
    await target.store.putBlob(target.repository, built.descriptor, built.bytes);
    let reads = 0;
    const store = Object.create(target.store, { openBlob: { value: (...args: Parameters<typeof target.store.openBlob>) => (reads++, target.store.openBlob(...args)) } }) as typeof target.store;
    const lie: LayerEntry[] = [{ path: 'srv/other', kind: 'file' }];
    const signed = recordLayerChanges(built.descriptor, lie, key);
    const cache = new LayerChangesCache();
    assert.deepEqual(await cache.get(store, target.repository, signed, key), { digest: built.descriptor.digest, entries: lie });
    assert.equal(reads, 0, 'a verified record is not read');
    const otherTenant = await cache.get(store, target.repository, signed, randomBytes(32));
    assert.deepEqual('entries' in otherTenant && otherTenant.entries.map((entry) => entry.path).sort(), ['srv', 'srv/app']);
    assert.equal(reads, 1, 'under another key the record is ignored and the blob read');
    const unkeyed = await cache.get(store, target.repository, signed);
    assert.deepEqual(unkeyed, otherTenant, 'the blob listing is shared');
    assert.equal(reads, 1);
  } finally {
    await rm(layout, { recursive: true, force: true });
  }
});
