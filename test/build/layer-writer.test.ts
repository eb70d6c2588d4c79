import assert from 'node:assert/strict';
import { link, lchown, mkdir, readFile, symlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import { sha256Digest } from '../../src/oci/digest.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import { diffFromUpper } from '../../src/build/diff/overlay-upper.ts';
import { BuildError } from '../../src/build/errors.ts';
import { sourceDateEpochFrom, writeLayer } from '../../src/build/layer-writer.ts';
import { makeOverlayWhiteout } from '../../src/build/special-files.ts';
import { unpackLayer } from '../../src/build/unpack.ts';
import { writeXattrs } from '../../src/build/xattr.ts';
import { readTarEntries, tarLayer, tempDir, type TestLayer } from './helpers.ts';

const shift = { uid: 100000, gid: 100000, size: 65536 };

/** An overlay upper dir as a run step would leave it: a new file, a changed dir, a deletion, an opaque dir. */
async function makeUpper(dir: string): Promise<string> {
  const upper = join(dir, 'upper');
  await mkdir(join(upper, 'etc/app'), { recursive: true });
  await mkdir(join(upper, 'var/cache'), { recursive: true });
  await writeFile(join(upper, 'etc/app/app.conf'), 'port=80\n');
  await link(join(upper, 'etc/app/app.conf'), join(upper, 'etc/app/same.conf'));
  await symlink('app.conf', join(upper, 'etc/app/current'));
  await writeFile(join(upper, 'var/cache/new'), 'cached');
  await makeOverlayWhiteout(join(upper, 'etc/removed'));
  await writeXattrs([
    { path: join(upper, 'var/cache'), name: 'user.overlay.opaque', value: Buffer.from('y') },
    { path: join(upper, 'etc/app/app.conf'), name: 'user.note', value: Buffer.from('kept') },
    { path: join(upper, 'etc/app/app.conf'), name: 'user.overlay.origin', value: Buffer.from([0, 1, 2]) },
  ]);
  for (const path of ['', 'etc', 'etc/app', 'etc/app/app.conf', 'etc/app/current', 'var', 'var/cache', 'var/cache/new']) {
    await lchown(join(upper, path), shift.uid + (path.endsWith('new') ? 33 : 0), shift.gid);
  }
  return upper;
}

test('an overlay upper dir becomes a sorted tar with OCI whiteouts, container ids and zero times', async (t) => {
  const dir = await tempDir(t);
  const upper = await makeUpper(dir);
  const layer = await writeLayer({ diff: await diffFromUpper(upper), directory: dir, idShift: shift });
  const blob = await readFile(layer.path);
  assert.equal(layer.descriptor.mediaType, MediaType.ociLayerGzip);
  assert.equal(layer.descriptor.digest, sha256Digest(blob));
  assert.equal(layer.descriptor.size, blob.length);
  assert.equal(layer.path, join(dir, layer.descriptor.digest.slice(7)));
  const entries = await readTarEntries(blob);
  assert.equal(layer.diffId, sha256Digest((await import('node:zlib')).gunzipSync(blob)));
  assert.deepEqual(
    entries.map((e) => `${e.type} ${e.name}${e.linkname ? ` -> ${e.linkname}` : ''}`),
    [
      'directory etc/',
      'file etc/.wh.removed',
      'directory etc/app/',
      'file etc/app/app.conf',
      'symlink etc/app/current -> app.conf',
      'link etc/app/same.conf -> etc/app/app.conf',
      'directory var/',
      'directory var/cache/',
      'file var/cache/.wh..wh..opq',
      'file var/cache/new',
    ],
  );
  assert.ok(entries.every((e) => e.mtime === 0));
  assert.deepEqual(entries.find((e) => e.name === 'var/cache/new')?.uid, 33);
  assert.ok(entries.every((e) => e.uid < 65536 && e.gid < 65536), 'no host id leaks');
  const conf = entries.find((e) => e.name === 'etc/app/app.conf');
  assert.equal(conf?.pax['SCHILY.xattr.user.note'], 'kept');
  assert.deepEqual(Object.keys(conf?.pax ?? {}).filter((key) => key.includes('overlay')), [], 'overlayfs-private xattrs are dropped');
  assert.deepEqual(layer.paths, ['etc', 'etc/removed', 'etc/app', 'etc/app/app.conf', 'etc/app/current', 'etc/app/same.conf', 'var', 'var/cache', 'var/cache/new']);
});

test('the same diff written twice gives byte-identical blobs, whatever the file times', async (t) => {
  const dir = await tempDir(t);
  const upper = await makeUpper(dir);
  const first = await writeLayer({ diff: await diffFromUpper(upper), directory: join(dir), idShift: shift });
  const firstBytes = await readFile(first.path);
  await utimes(join(upper, 'var/cache/new'), new Date(), new Date(2_000_000_000_000));
  const out = join(dir, 'second');
  await mkdir(out);
  const second = await writeLayer({ diff: await diffFromUpper(upper), directory: out, idShift: shift });
  assert.equal(second.descriptor.digest, first.descriptor.digest);
  assert.ok((await readFile(second.path)).equals(firstBytes));
});

test('SOURCE_DATE_EPOCH clamps later times and keeps earlier ones', async (t) => {
  const dir = await tempDir(t);
  const upper = join(dir, 'upper');
  await mkdir(upper);
  await writeFile(join(upper, 'old'), 'packaged long ago');
  await writeFile(join(upper, 'new'), 'made by the run');
  await utimes(join(upper, 'old'), new Date(), new Date(1_000_000_000 * 1000));
  const epoch = sourceDateEpochFrom({ SOURCE_DATE_EPOCH: '1700000000' });
  assert.equal(epoch, 1_700_000_000);
  const layer = await writeLayer({ diff: await diffFromUpper(upper), directory: dir, sourceDateEpoch: epoch });
  const times = Object.fromEntries((await readTarEntries(await readFile(layer.path))).map((e) => [e.name, e.mtime]));
  assert.deepEqual(times, { new: 1_700_000_000, old: 1_000_000_000 });
  assert.equal(sourceDateEpochFrom({}), undefined);
  assert.throws(() => sourceDateEpochFrom({ SOURCE_DATE_EPOCH: 'yesterday' }), /SOURCE_DATE_EPOCH="yesterday"/);
});

test('a file owned by a host id outside the build range is refused', async (t) => {
  const dir = await tempDir(t);
  const upper = join(dir, 'upper');
  await mkdir(upper);
  await writeFile(join(upper, 'host-owned'), 'x');
  await assert.rejects(writeLayer({ diff: await diffFromUpper(upper), directory: dir, idShift: shift }), (error: BuildError) => {
    assert.equal(error.code, 'ID_OUT_OF_RANGE');
    assert.match(error.message, /\/host-owned is owned by host ids 0:0/);
    return true;
  });
});

test('a written layer unpacks back to the same tree, whiteouts applied', async (t) => {
  const dir = await tempDir(t);
  const upper = await makeUpper(dir);
  const layer = await writeLayer({ diff: await diffFromUpper(upper), directory: dir, idShift: shift });
  const root = join(dir, 'root');
  await mkdir(join(root, 'etc'), { recursive: true });
  await mkdir(join(root, 'var/cache/apt'), { recursive: true });
  await writeFile(join(root, 'etc/removed'), 'lower');
  const summary = await unpackLayer((await import('node:fs')).createReadStream(layer.path), {
    root,
    mediaType: layer.descriptor.mediaType,
    digest: layer.descriptor.digest,
    expectedDiffId: layer.diffId,
  });
  assert.deepEqual(summary.whiteouts, ['etc/removed']);
  assert.deepEqual(summary.opaqueDirectories, ['var/cache']);
  assert.equal(await readFile(join(root, 'etc/app/same.conf'), 'utf8'), 'port=80\n');
  const { readdir } = await import('node:fs/promises');
  assert.deepEqual(await readdir(join(root, 'var/cache')), ['new']);
  assert.deepEqual(await readdir(join(root, 'etc')), ['app']);
});

test('squashfs layers are reproducible, carry overlay whiteouts, and their diff_id is the blob digest', async (t) => {
  const dir = await tempDir(t);
  const upper = await makeUpper(dir);
  const first = await writeLayer({ diff: await diffFromUpper(upper), directory: dir, idShift: shift, format: 'squashfs', sourceDateEpoch: 1_700_000_000 });
  const out = join(dir, 'again');
  await mkdir(out);
  const second = await writeLayer({ diff: await diffFromUpper(upper), directory: out, idShift: shift, format: 'squashfs', sourceDateEpoch: 1_700_000_000 });
  assert.equal(first.descriptor.mediaType, MediaType.stackerSquashfs);
  assert.equal(first.diffId, first.descriptor.digest);
  assert.equal(second.descriptor.digest, first.descriptor.digest);
  const listing = (await execa('unsquashfs', ['-lln', first.path])).stdout;
  assert.match(listing, /c\S+ 0\/0\s+0,\s+0 .* squashfs-root\/etc\/removed/);
  assert.match(listing, /-rw-r--r-- 33\/0 .* squashfs-root\/var\/cache\/new/);
  const extracted = join(dir, 'extracted');
  await execa('unsquashfs', ['-d', extracted, first.path]);
  const opaque = (await execa('getfattr', ['-h', '-n', 'trusted.overlay.opaque', '--only-values', join(extracted, 'var/cache')])).stdout;
  assert.equal(opaque, 'y');
});

/** Hand-made OCI layout: base layer + our layer, as `umoci unpack` reads it. */
async function ociLayout(dir: string, layers: { bytes: Buffer; mediaType: string; diffId: string }[]): Promise<string> {
  const layout = join(dir, 'layout');
  await mkdir(join(layout, 'blobs/sha256'), { recursive: true });
  const put = async (bytes: Buffer) => {
    const digest = sha256Digest(bytes);
    await writeFile(join(layout, 'blobs/sha256', digest.slice(7)), bytes);
    return { digest, size: bytes.length };
  };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
  const layerDescriptors = [];
  for (const layer of layers) layerDescriptors.push({ mediaType: layer.mediaType, ...(await put(layer.bytes)) });
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.ociManifest, config: { mediaType: MediaType.ociConfig, ...(await put(config)) }, layers: layerDescriptors }),
  );
  const index = { schemaVersion: 2, manifests: [{ mediaType: MediaType.ociManifest, ...(await put(manifest)), annotations: { 'org.opencontainers.image.ref.name': 'test' } }] };
  await writeFile(join(layout, 'index.json'), JSON.stringify(index));
  await writeFile(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  return layout;
}

test('umoci unpacks an image made of a base layer and a written layer', async (t) => {
  const dir = await tempDir(t);
  const base: TestLayer = await tarLayer([
    { name: 'etc', type: 'directory' },
    { name: 'etc/removed', content: 'from the base' },
    { name: 'var', type: 'directory' },
    { name: 'var/cache', type: 'directory' },
    { name: 'var/cache/stale', content: 'hidden by the opaque dir' },
  ]);
  const upper = await makeUpper(dir);
  const written = await writeLayer({ diff: await diffFromUpper(upper), directory: dir, idShift: shift, sourceDateEpoch: 1_700_000_000 });
  const layout = await ociLayout(dir, [
    { bytes: base.bytes, mediaType: base.mediaType, diffId: base.diffId },
    { bytes: await readFile(written.path), mediaType: written.descriptor.mediaType, diffId: written.diffId },
  ]);
  const bundle = join(dir, 'bundle');
  await execa('umoci', ['unpack', '--image', `${layout}:test`, bundle]);
  const rootfs = join(bundle, 'rootfs');
  assert.equal(await readFile(join(rootfs, 'etc/app/app.conf'), 'utf8'), 'port=80\n');
  const { readdir, lstat } = await import('node:fs/promises');
  assert.deepEqual(await readdir(join(rootfs, 'etc')), ['app']);
  assert.deepEqual(await readdir(join(rootfs, 'var/cache')), ['new']);
  assert.equal((await lstat(join(rootfs, 'var/cache/new'))).uid, 33);
});
