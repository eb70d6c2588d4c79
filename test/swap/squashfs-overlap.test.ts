/**
 * Squashfs layers (stacker's format, which restack writes too) are analysed like tar layers, and
 * a layer the overlap check cannot read refuses the swap unless overlaps are allowed.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { listSquashfsEntries } from '../../src/build/squashfs-entries.ts';
import { makeNode } from '../../src/build/special-files.ts';
import { writeXattrs } from '../../src/build/xattr.ts';
import { inspectImage } from '../../src/engine/inspect.ts';
import { LayerChangesCache } from '../../src/engine/layer-changes.ts';
import { swapDependency } from '../../src/engine/swap.ts';
import { sha256Digest } from '../../src/oci/digest.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import { tempDir } from '../build/helpers.ts';
import { makeLayer, type BuiltLayer } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered, pushSeeds } from './seeds.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

/** A stacker-style squashfs layer of a directory tree the test fills in. */
async function squashfsLayer(t: import('node:test').TestContext, fill: (root: string) => Promise<void>): Promise<BuiltLayer> {
  const dir = await tempDir(t, 'restack-sqfs-test-');
  const root = join(dir, 'root');
  await mkdir(root);
  await fill(root);
  await execa('mksquashfs', [root, join(dir, 'layer'), '-noappend', '-quiet', '-all-root', '-comp', 'zstd']);
  const bytes = await readFile(join(dir, 'layer'));
  const digest = sha256Digest(bytes);
  return { bytes, descriptor: { mediaType: MediaType.stackerSquashfs, digest, size: bytes.length }, diffId: digest };
}

test('a squashfs layer lists its files, directories, hard links, fifos, sockets, 0/0 whiteouts and opaque directories', async (t) => {
  const layer = await squashfsLayer(t, async (root) => {
    await mkdir(join(root, 'usr/lib'), { recursive: true });
    await mkdir(join(root, 'opt/tool'), { recursive: true });
    await writeFile(join(root, 'usr/lib/lib a.so'), 'a');
    await execa('ln', [join(root, 'usr/lib/lib a.so'), join(root, 'usr/lib/link')]);
    await makeNode(join(root, 'usr/gone'), 'character-device', 0, 0);
    await makeNode(join(root, 'usr/pipe'), 'fifo');
    const socket = createServer();
    await new Promise<void>((listening) => socket.listen(join(root, 'usr/socket'), listening));
    t.after(() => socket.close());
    await writeXattrs([{ path: join(root, 'opt/tool'), name: 'trusted.overlay.opaque', value: Buffer.from('y') }]);
  });
  const entries = await listSquashfsEntries(Readable.from([layer.bytes]), layer.descriptor.digest);
  const byPath = (a: { path: string; kind: string }, b: { path: string; kind: string }) => `${a.path} ${a.kind}`.localeCompare(`${b.path} ${b.kind}`);
  const linked = entries.find((entry) => entry.link !== undefined);
  assert.deepEqual(entries.map(({ path, kind }) => ({ path, kind })).sort(byPath), [
    { path: 'opt', kind: 'directory' },
    { path: 'opt/tool', kind: 'directory' },
    { path: 'opt/tool', kind: 'opaque' },
    { path: 'usr', kind: 'directory' },
    { path: 'usr/gone', kind: 'whiteout' },
    { path: 'usr/lib', kind: 'directory' },
    { path: 'usr/lib/lib a.so', kind: 'file' },
    { path: 'usr/lib/link', kind: 'file' },
    { path: 'usr/pipe', kind: 'file' },
    { path: 'usr/socket', kind: 'file' },
  ]);
  assert.ok(linked !== undefined && ['usr/lib/lib a.so', 'usr/lib/link'].includes(linked.link ?? ''), 'the hard link names its target');
});

describe('swaps over squashfs layers, on docker-registry', { skip }, () => {
  const running = registry as RunningRegistry;
  after(() => running.stop());
  let python3v2: BuiltLayer;
  before(async () => {
    python3v2 = await makeLayer({ 'usr/bin/python3': 'python 3.12\n' });
  });

  test("a squashfs layer of A that rewrote python3's file refuses the swap with the path", async (t) => {
    const prefix = `docker://${running.host}/squash-overlap`;
    const own = await squashfsLayer(t, async (root) => {
      await mkdir(join(root, 'usr/bin'), { recursive: true });
      await writeFile(join(root, 'usr/bin/python3'), 'patched by A\n');
    });
    const seeds = await pushSeeds(prefix, { moreOwn: [own] });
    await pushLayered(prefix, 'python3', [seeds.base, python3v2]);
    const outcome = await swapDependency({ target: open(`${prefix}/a:latest`), dependency: open(`${prefix}/python3:latest`), layerChanges: new LayerChangesCache() });
    assert.equal(outcome.status, 'refused');
    assert.equal(outcome.refusal?.reason, 'Overlap');
    assert.match(outcome.refusal?.message ?? '', /\/usr\/bin\/python3/);
    assert.equal((await inspectImage(open(`${prefix}/a:latest`))).digest, seeds.a);
  });

  test('a squashfs layer that cannot be read refuses the swap (NotAnalysed), unless overlaps are allowed', async () => {
    const prefix = `docker://${running.host}/squash-unreadable`;
    const bytes = randomBytes(4096);
    const digest = sha256Digest(bytes);
    const broken: BuiltLayer = { bytes, descriptor: { mediaType: MediaType.stackerSquashfs, digest, size: bytes.length }, diffId: digest };
    const seeds = await pushSeeds(prefix, { moreOwn: [broken] });
    await pushLayered(prefix, 'python3', [seeds.base, python3v2]);
    const request = { target: open(`${prefix}/a:latest`), dependency: open(`${prefix}/python3:latest`), layerChanges: new LayerChangesCache() };
    const refused = await swapDependency(request);
    assert.equal(refused.refusal?.reason, 'NotAnalysed');
    assert.match(refused.refusal?.message ?? '', new RegExp(`${digest.slice(0, 19)}: the squashfs layer cannot be listed: .*rebuild \\(or pass --allow-overlap\\)`));
    assert.equal((await inspectImage(open(`${prefix}/a:latest`))).digest, seeds.a);
    const allowed = await swapDependency({ ...request, allowOverlap: true });
    assert.equal(allowed.status, 'swapped', allowed.refusal?.message);
  });
});
