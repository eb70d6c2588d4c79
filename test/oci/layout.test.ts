import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { execa } from 'execa';
import { digestHex, sha256Digest } from '../../src/oci/digest.ts';
import { OciError } from '../../src/oci/errors.ts';
import { breakLock } from '../../src/oci/file-lock.ts';
import { LayoutStore, refNameAnnotation } from '../../src/oci/layout.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import { makeImage, makeLayer, validateImage, writeImage } from '../services/images.ts';
import { requireProgram, SkipError } from '../services/service.ts';

const root = await mkdtemp(join(tmpdir(), 'restack-layout-test-'));
after(() => rm(root, { recursive: true, force: true }));
let counter = 0;
const freshDir = () => join(root, `layout-${counter++}`);

function isOciError(code: string) {
  return (error: unknown) => error instanceof OciError && error.code === code;
}

async function readIndex(dir: string) {
  return JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { schemaVersion: number; manifests: Array<{ digest: string; annotations?: Record<string, string> }> };
}

describe('LayoutStore', () => {
  test('writes an image into a new layout and reads it back verified', async () => {
    const dir = freshDir();
    const store = new LayoutStore(dir);
    const image = makeImage({ layers: [await makeLayer({ 'etc/os-release': 'ID=test\n' }), await makeLayer({ 'usr/bin/tool': 'x' }, { compression: 'none' })] });
    const written = await writeImage(store, 'ignored', image, 'v1');
    assert.equal(written.digest, image.manifestDescriptor.digest);

    assert.deepEqual(JSON.parse(await readFile(join(dir, 'oci-layout'), 'utf8')), { imageLayoutVersion: '1.0.0' });
    const index = await readIndex(dir);
    assert.equal(index.manifests.length, 1);
    assert.equal(index.manifests[0]?.annotations?.[refNameAnnotation], 'v1');

    const resolved = await store.resolve('', 'v1');
    assert.deepEqual(resolved, { mediaType: MediaType.ociManifest, digest: written.digest, size: written.size });
    assert.deepEqual(await store.resolve('', written.digest), resolved);
    const read = await validateImage(store, '', 'v1');
    assert.deepEqual(Buffer.from(read.manifestBytes), Buffer.from(image.manifestBytes));
    assert.deepEqual(read.config.rootfs.diff_ids, image.config.rootfs.diff_ids);
    assert.deepEqual(await store.listTags(''), ['v1']);
    assert.equal(await store.putBlob('', image.blobs[0]!.descriptor, image.blobs[0]!.bytes), 'present');
    assert.equal(await store.mountBlob('other', image.blobs[1]!.descriptor, 'ignored'), 'present');
  });

  test('tag replaces an existing ref of the same name and keeps the others', async () => {
    const dir = freshDir();
    const store = new LayoutStore(dir);
    const first = makeImage({ layers: [await makeLayer({ a: '1' })] });
    const second = makeImage({ layers: [await makeLayer({ a: '2' })] });
    await writeImage(store, '', first, 'latest');
    await writeImage(store, '', first, 'stable');
    await writeImage(store, '', second, 'latest');
    const index = await readIndex(dir);
    assert.deepEqual(index.manifests.map((entry) => [entry.annotations?.[refNameAnnotation], entry.digest]).sort(), [
      ['latest', second.manifestDescriptor.digest],
      ['stable', first.manifestDescriptor.digest],
    ]);
  });

  test('unknown refs and blobs say what exists', async () => {
    const store = new LayoutStore(freshDir());
    await writeImage(store, '', makeImage({ layers: [] }), 'only');
    await assert.rejects(store.resolve('', 'missing'), (error: unknown) => isOciError('MANIFEST_UNKNOWN')(error) && /available refs: only/.test((error as OciError).hint ?? ''));
    await assert.rejects(store.readBlob('', { mediaType: 'x', digest: sha256Digest('nope'), size: 4 }), isOciError('BLOB_UNKNOWN'));
    await assert.rejects(store.mountBlob('', { mediaType: 'x', digest: sha256Digest('nope'), size: 4 }, 'elsewhere'), isOciError('BLOB_UNKNOWN'));
  });

  test('a manifest whose blobs are missing is refused, as a registry would', async () => {
    const store = new LayoutStore(freshDir());
    const image = makeImage({ layers: [await makeLayer({ a: 'a' })] });
    await store.putBlob('', image.configDescriptor, image.configBytes);
    await assert.rejects(store.putManifest('', image.manifestBytes, MediaType.ociManifest), isOciError('MANIFEST_BLOB_UNKNOWN'));
    await assert.rejects(store.putManifest('', image.manifestBytes, MediaType.dockerManifest), isOciError('MANIFEST_INVALID'));
  });

  test('a source that does not match its descriptor writes nothing', async () => {
    const dir = freshDir();
    const store = new LayoutStore(dir);
    const descriptor = { mediaType: MediaType.ociLayerTar, digest: sha256Digest('expected'), size: 8 };
    await assert.rejects(store.putBlob('', descriptor, Buffer.from('tampered')), isOciError('DIGEST_MISMATCH'));
    await assert.rejects(store.putBlob('', descriptor, Buffer.from('short')), isOciError('SIZE_MISMATCH'));
    assert.deepEqual(await readdir(join(dir, 'blobs', 'sha256')), []);
  });

  test('reads verify content: a corrupted blob fails whole or streamed', async () => {
    const dir = freshDir();
    const store = new LayoutStore(dir);
    const layer = await makeLayer({ file: 'content' });
    await store.putBlob('', layer.descriptor, layer.bytes);
    const corrupted = Buffer.from(layer.bytes);
    corrupted.writeUInt8(corrupted.readUInt8(corrupted.length - 1) ^ 0xff, corrupted.length - 1);
    await writeFile(join(dir, 'blobs', 'sha256', digestHex(layer.descriptor.digest)), corrupted);
    await assert.rejects(store.readBlob('', layer.descriptor), isOciError('DIGEST_MISMATCH'));
    await assert.rejects(async () => {
      for await (const _chunk of await store.openBlob('', layer.descriptor)) {
        // drain
      }
    }, isOciError('DIGEST_MISMATCH'));
  });

  test('writers tagging at once in one process lose no update', async () => {
    const dir = freshDir();
    const store = new LayoutStore(dir);
    const image = makeImage({ layers: [await makeLayer({ shared: 'x' })] });
    const descriptor = await writeImage(store, '', image);
    await Promise.all(Array.from({ length: 25 }, (_, index) => store.tag('', `t${index}`, descriptor)));
    assert.equal((await store.listTags('')).length, 25);
  });

  test('writer processes tagging at once leave a valid index.json with every tag', async () => {
    const dir = freshDir();
    const image = makeImage({ layers: [await makeLayer({ shared: 'x' })] });
    const descriptor = await writeImage(new LayoutStore(dir), '', image);
    const layoutModule = new URL('../../src/oci/layout.ts', import.meta.url).href;
    const script = (writer: number) => `
      const { LayoutStore } = await import(${JSON.stringify(layoutModule)});
      const store = new LayoutStore(${JSON.stringify(dir)});
      const descriptor = ${JSON.stringify(descriptor)};
      for (let i = 0; i < 10; i++) await store.tag('', 'w${writer}-' + i, descriptor);
      await store.tag('', 'contended', descriptor);`;
    const writers = Array.from({ length: 4 }, (_, writer) =>
      new Promise<void>((resolve, reject) => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script(writer)], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer ${writer} exited ${code}: ${stderr}`))));
      }),
    );
    await Promise.all(writers);
    const index = await readIndex(dir);
    const names = index.manifests.map((entry) => entry.annotations?.[refNameAnnotation]);
    assert.equal(names.length, 41);
    assert.equal(new Set(names).size, 41);
    assert.deepEqual((await readdir(dir)).filter((name) => name.startsWith('.tmp-') || name.includes('.lock')), []);
  });

  test('a lock left by a dead process is broken; a live one makes writers wait and then give up', async () => {
    const dir = freshDir();
    const store = new LayoutStore(dir, { lock: { timeoutMs: 300 } });
    const descriptor = await writeImage(store, '', makeImage({ layers: [] }));
    const lock = join(dir, 'index.json.lock');
    const dead = spawn(process.execPath, ['-e', '']);
    const deadPid = await new Promise<number>((resolve) => dead.on('exit', () => resolve(dead.pid as number)));
    await mkdir(lock);
    await writeFile(join(lock, 'owner'), JSON.stringify({ pid: deadPid, host: hostname(), pidNamespace: readlinkSync('/proc/self/ns/pid'), nonce: 'dead' }));
    await store.tag('', 'after-crash', descriptor);
    assert.deepEqual(await store.listTags(''), ['after-crash']);

    // another container of the pod: same hostname, its own pids; its pid means nothing here
    await mkdir(lock);
    await writeFile(join(lock, 'owner'), JSON.stringify({ pid: deadPid, host: hostname(), pidNamespace: 'pid:[1]', nonce: 'sidecar' }));
    await assert.rejects(store.tag('', 'sidecar-held', descriptor), isOciError('LAYOUT_LOCKED'));
    await rm(lock, { recursive: true });

    await mkdir(lock);
    await writeFile(join(lock, 'owner'), JSON.stringify({ pid: process.pid, host: hostname(), nonce: 'alive' }));
    await assert.rejects(store.tag('', 'blocked', descriptor), (error: unknown) => isOciError('LAYOUT_LOCKED')(error) && /remove the directory/.test((error as OciError).hint ?? ''));
    await rm(lock, { recursive: true });
  });

  test('breaking a stale lock never removes a lock taken afresh since it was judged', async () => {
    const lock = join(freshDir(), 'index.json.lock');
    await mkdir(lock, { recursive: true });
    await writeFile(join(lock, 'owner'), JSON.stringify({ pid: 1, host: 'gone', nonce: 'stale' }));
    const judged = { ino: (await stat(lock)).ino, nonce: 'stale' };
    // meanwhile another writer broke it and took the lock
    await rm(lock, { recursive: true });
    await mkdir(lock);
    await writeFile(join(lock, 'owner'), JSON.stringify({ pid: process.pid, host: hostname(), nonce: 'live' }));
    await breakLock(lock, judged);
    assert.equal(JSON.parse(await readFile(join(lock, 'owner'), 'utf8')).nonce, 'live');
    assert.deepEqual((await readdir(join(lock, '..'))).filter((name) => name.includes('.stale-')), []);
    await breakLock(lock, { ino: (await stat(lock)).ino, nonce: 'live' });
    assert.deepEqual(await readdir(join(lock, '..')), []);
  });

  test('umoci reads a layout written by LayoutStore', async (t) => {
    let umoci: string;
    try {
      umoci = await requireProgram('umoci', 'umoci');
    } catch (error) {
      if (error instanceof SkipError) return t.skip(error.message);
      throw error;
    }
    const dir = freshDir();
    const store = new LayoutStore(dir);
    await writeImage(store, '', makeImage({ layers: [await makeLayer({ 'etc/motd': 'hello\n' })] }), 'v1');
    assert.equal((await execa(umoci, ['ls', '--layout', dir])).stdout.trim(), 'v1');
    const stat = await execa(umoci, ['stat', '--image', `${dir}:v1`, '--json']);
    assert.equal((JSON.parse(stat.stdout) as { history: unknown[] }).history.length, 1);
  });
});
