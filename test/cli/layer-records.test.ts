/**
 * Builds sign their own layers' change records with the layer record key, and a swap holding the
 * key checks overlaps without reading a layer blob; under another key, without one, or with a
 * tampered record, the blobs are read as before. Real builds (busybox, LXC) pushed through a
 * counting proxy to docker-registry.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { listBlobChanges } from '../../src/engine/layer-changes.ts';
import { readImage } from '../../src/oci/open.ts';
import type { Descriptor, ImageManifest } from '../../src/oci/types.ts';
import { layerChangesKey, recordedLayerChanges } from '../../src/swap/layer-record.ts';
import { build, outputsOf, pushBusyboxBase, suiteDir } from '../build-engine/helpers.ts';
import { startFaultyProxy, type FaultyProxy } from '../services/faulty-proxy.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open } from '../swap/seeds.ts';
import { restack } from './restack.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

describe('layer change records: restack build signs them, restack swap trusts them under the key alone', { skip }, () => {
  const running = registry as RunningRegistry;
  let proxy: FaultyProxy;
  let dir: string;
  /** The default key file's home: XDG_CONFIG_HOME of every command. */
  let env: Record<string, string>;
  /** python3's own layer as A applied it. */
  let python3Old: Descriptor;
  const prefix = () => `docker://${proxy.host}/records`;
  const keyFile = () => join(dir, 'config', 'restack', 'layer-record.key');
  const manifestOf = async (name: string, tag = 'latest') => (await readImage(open(`${prefix()}/${name}:${tag}`).store, `records/${name}`, tag)).manifest as ImageManifest;
  const ownLayer = async (name: string) => (await manifestOf(name)).layers.at(-1) as Descriptor;
  /** GETs of these layer blobs, whichever repository they were read from. */
  const blobReads = (layers: readonly Descriptor[]) => proxy.requests.filter((request) => request.method === 'GET' && layers.some((layer) => request.path.endsWith(`/blobs/${layer.digest}`))).length;
  /** Each swap with an empty listing cache (XDG_CACHE_HOME): a listing kept on disk by an earlier one would hide its reads. */
  let swaps = 0;
  const swapOf = (target: string, ...more: string[]) =>
    restack(['swap', `${prefix()}/${target}`, '--dependency', `${prefix()}/python3:latest`, '--json', ...more], { env: { ...env, XDG_CACHE_HOME: join(dir, `cache-${++swaps}`) } });
  const swap = (...more: string[]) => swapOf('a:latest', ...more);

  const buildRecipe = async (file: string, text: string) => {
    await writeFile(join(dir, file), text);
    return outputsOf(await build(['-f', join(dir, file), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots'), '--push', prefix()], { env }));
  };
  const from = () => `{type: docker, url: "${prefix()}/base:latest"}`;
  const deps = (python3: string) =>
    [`ssl:     {from: ${from()}, run: [mkdir -p /usr/lib, echo openssl 3.0 > /usr/lib/ssl.txt]}`, `python3: {from: ${from()}, run: [mkdir -p /usr/bin, echo ${python3} > /usr/bin/python3]}`, ''].join('\n');

  before(async () => {
    dir = await suiteDir('restack-records-');
    env = { XDG_CONFIG_HOME: join(dir, 'config') };
    proxy = await startFaultyProxy(running.url);
    await pushBusyboxBase(`${prefix()}/base:latest`);
    await buildRecipe('deps.yaml', deps('python 3.11'));
    await buildRecipe('a.yaml', ['A:', `  from: ${from()}`, `  apply: ["${prefix()}/ssl:latest", "${prefix()}/python3:latest"]`, '  run: [mkdir -p /srv, cat /usr/lib/ssl.txt /usr/bin/python3 > /srv/A]', ''].join('\n'));
    python3Old = await ownLayer('python3');
    // python3's next version: A applied the one before
    await buildRecipe('deps.yaml', deps('python 3.12'));
  });
  after(async () => {
    await proxy?.stop();
    await running.stop();
    await rm(dir, { recursive: true, force: true });
  });

  test('the build created the default key, owner-only, and recorded each own layer exactly as its blob lists', async () => {
    assert.equal((await stat(keyFile())).mode & 0o777, 0o600);
    const key = await readFile(keyFile());
    for (const name of ['ssl', 'python3', 'a']) {
      const layer = await ownLayer(name);
      const listed = await listBlobChanges(await open(`${prefix()}/${name}:latest`).store.openBlob(`records/${name}`, layer), layer);
      assert.ok('entries' in listed);
      assert.deepEqual(recordedLayerChanges(layer, key), listed.entries, `${name}'s own layer`);
    }
  });

  test('a swap under another key, or none, reads the own layer; a tampered record is read past too', async () => {
    const own = await ownLayer('a');
    const other = join(dir, 'other.key');
    await writeFile(other, randomBytes(32), { mode: 0o600 });
    for (const args of [['--layer-record-key', other], ['--no-layer-record-key']]) {
      proxy.clear();
      const run = await swap('--dry-run', ...args);
      assert.equal(run.exitCode, 0, run.stderr);
      assert.equal(JSON.parse(run.stdout).status, 'planned');
      assert.equal(blobReads([own]), 1, `${args.join(' ')}: A's own layer is read`);
    }
    // A's record with its first entry dropped, pushed as a:tampered: the mac no longer verifies
    const manifest = await manifestOf('a');
    const record = JSON.parse(own.annotations?.[layerChangesKey] ?? '{}') as { entries: unknown[] };
    record.entries = record.entries.slice(1);
    const tampered = { ...manifest, layers: [...manifest.layers.slice(0, -1), { ...own, annotations: { [layerChangesKey]: JSON.stringify(record) } }] };
    const target = open(`${prefix()}/a:tampered`);
    await target.store.putManifest(target.repository, Buffer.from(JSON.stringify(tampered)), manifest.mediaType ?? 'application/vnd.oci.image.manifest.v1+json', 'tampered');
    proxy.clear();
    const run = await swapOf('a:tampered', '--dry-run');
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(blobReads([own]), 1, 'the tampered record is ignored and the layer read');
  });

  test('a key file others may read, or not 32 bytes, is refused naming the file and the fix', async () => {
    const open644 = join(dir, 'open.key');
    await writeFile(open644, randomBytes(32), { mode: 0o644 });
    const refused = await swap('--dry-run', '--layer-record-key', open644);
    assert.equal(refused.exitCode, 1);
    assert.match(refused.stderr, new RegExp(`${open644} is readable by every user \\(mode 644\\)`));
    assert.match(refused.stderr, new RegExp(`hint: chmod 600 ${open644}`));
    const short = join(dir, 'short.key');
    await writeFile(short, 'not a key\n', { mode: 0o600 });
    const run = await build(['-f', join(dir, 'a.yaml'), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots')], { env: { ...env, RESTACK_LAYER_RECORD_KEY_FILE: short } });
    assert.equal(run.exitCode, 1);
    assert.match(run.stderr, new RegExp(`${short} holds 10 bytes, not 32 random bytes`));
  });

  test('with the key, the swap reads no layer blob at all, and the swapped image keeps the records', async () => {
    const [own, python3New] = [await ownLayer('a'), await ownLayer('python3')];
    assert.equal((await manifestOf('a')).layers[2]?.digest, python3Old.digest);
    assert.notEqual(python3New.digest, python3Old.digest);
    proxy.clear();
    const run = await swap();
    assert.equal(run.exitCode, 0, run.stderr);
    assert.equal(JSON.parse(run.stdout).status, 'swapped');
    assert.equal(blobReads([python3Old, python3New, own]), 0, 'old slice, new slice and own layer are all recorded');
    const swapped = await manifestOf('a');
    assert.equal(swapped.layers[2]?.digest, python3New.digest);
    assert.deepEqual(swapped.layers.at(-1), own, "A's own layer, its record with it");
  });
});
