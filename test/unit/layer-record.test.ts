import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { layerChangesKey, maxRecordBytes, recordedLayerChanges, recordLayerChanges } from '../../src/swap/layer-record.ts';
import type { LayerEntry } from '../../src/swap/safety.ts';

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
