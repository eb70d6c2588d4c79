/**
 * What a recipe can ask of a layer: imports of every kind (local file and directory, http with a
 * hash, stacker:// from an earlier layer, dest with mode and owner, the deprecated import:),
 * generate_labels, image config, and a warning when two applied images change the same file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { recipeAnnotation } from '../../src/engine/build/image-config.ts';
import { readImage } from '../../src/oci/open.ts';
import { LayoutStore } from '../../src/oci/layout.ts';
import { provenanceKey } from '../../src/swap/provenance.ts';
import { readTarEntries } from '../build/helpers.ts';
import { build, containersStarted, outputsOf, suiteDir, writeBusyboxTarball, type BuildRun } from './helpers.ts';

const payload = 'downloaded payload\n';
const payloadHash = createHash('sha256').update(payload).digest('hex');

describe('restack build: imports, labels, config, apply warnings', () => {
  const server = createServer((request, response) => {
    if (request.url === '/dl/payload.txt') response.end(payload);
    else response.writeHead(404).end();
  });
  let dir: string;
  let first: BuildRun;

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    dir = await suiteDir('restack-features-');
    await writeBusyboxTarball(join(dir, 'rootfs.tar.gz'));
    await mkdir(join(dir, 'files', 'dir'), { recursive: true });
    await writeFile(join(dir, 'files', 'note.txt'), 'a note\n');
    await writeFile(join(dir, 'files', 'dir', 'inner.txt'), 'inner\n');
    await writeFile(
      join(dir, 'stacker.yaml'),
      `
base:
  from: {type: tar, url: rootfs.tar.gz}
  build_only: true
tools:
  from: {type: built, tag: base}
  run: [mkdir -p /opt/tools, echo tool-v1 > /opt/tools/tool]
tools2:
  from: {type: built, tag: base}
  run: [mkdir -p /opt/tools, echo tool-v2 > /opt/tools/tool]
both:
  from: {type: built, tag: base}
  apply: [tools, tools2]
app:
  from: {type: built, tag: base}
  imports:
    - files/note.txt
    - files/dir
    - path: http://127.0.0.1:${port}/dl/payload.txt
      hash: ${payloadHash.toUpperCase()}
    - stacker://tools/opt/tools/tool
    - path: files/note.txt
      dest: /etc/app/note
      mode: 0640
      uid: 1000
      gid: 1000
    - path: files/dir/
      dest: /opt/dir/
  overlay_dirs: [{source: files/dir, dest: /usr/share/extra}]
  run: |
    cat /stacker/imports/note.txt
    test -f /stacker/imports/dir/inner.txt
    cp /stacker/imports/payload.txt /payload
    cp /stacker/imports/tool /tool
    ! touch /stacker/imports/written 2>/dev/null
  generate_labels: echo -n "$STACKER_LAYER_NAME" > /stacker/oci-labels/built-by
  environment: {MODE: prod}
  full_command: /bin/sh -c "cat /payload"
  labels: {team: core}
  annotations: {org.example.note: hi}
  volumes: [/data]
  working_dir: /srv
  runtime_user: "1000"
legacy:
  from: {type: built, tag: base}
  import: files/note.txt
  run: test -f /stacker/note.txt
`,
    );
    first = await build(['-f', join(dir, 'stacker.yaml'), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots')]);
  });
  after(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(dir, { recursive: true, force: true });
  });

  const image = async (name: string) => readImage(new LayoutStore(join(dir, 'oci')), '', name);
  const layerEntries = async (digest: string) => readTarEntries(await readFile(join(dir, 'oci', 'blobs', 'sha256', digest.slice('sha256:'.length))));

  test('every layer builds; run output is streamed as events', () => {
    const outputs = outputsOf(first);
    assert.deepEqual([...outputs.keys()], ['base', 'tools', 'tools2', 'both', 'app', 'legacy']);
    assert.ok(first.events.some((event) => event.event === 'output' && event.layer === 'app' && event.line === 'a note'));
    assert.deepEqual(containersStarted(first), ['tools', 'tools2', 'app', 'legacy'], 'a layer with nothing to run starts no container');
  });

  test('imports: dest with mode and owner, directories, overlay_dirs, http and stacker:// content in the layer; /stacker never leaks', async () => {
    const app = await image('app');
    const own = await layerEntries(app.manifest.layers[1]?.digest as string);
    const byName = new Map(own.map((entry) => [entry.name, entry]));
    assert.deepEqual([byName.get('etc/app/note')?.mode, byName.get('etc/app/note')?.uid, byName.get('etc/app/note')?.gid, byName.get('etc/app/note')?.content], [0o640, 1000, 1000, 'a note\n']);
    assert.equal(byName.get('opt/dir/inner.txt')?.content, 'inner\n');
    assert.equal(byName.get('usr/share/extra/inner.txt')?.content, 'inner\n');
    assert.equal(byName.get('payload')?.content, payload);
    assert.equal(byName.get('tool')?.content, 'tool-v1\n');
    assert.deepEqual(own.filter((entry) => entry.name.startsWith('stacker') || entry.name.startsWith('proc') || entry.name.startsWith('dev')), []);
  });

  test('image config and annotations come from the recipe; generate_labels become labels', async () => {
    const app = await image('app');
    const config = app.config.config ?? {};
    assert.deepEqual(config.Entrypoint, ['/bin/sh', '-c', 'cat /payload']);
    assert.equal(config.Cmd, undefined);
    assert.ok(config.Env?.includes('MODE=prod'));
    assert.ok(config.Env?.some((entry) => entry.startsWith('PATH=')));
    assert.deepEqual(config.Labels, { 'built-by': 'app', team: 'core' });
    assert.deepEqual(config.Volumes, { '/data': {} });
    assert.equal(config.WorkingDir, '/srv');
    assert.equal(config.User, '1000');
    const annotations = app.manifest.annotations ?? {};
    assert.equal(annotations['org.example.note'], 'hi');
    assert.match(annotations[recipeAnnotation] ?? '', /^app:\n {2}from:\n {4}type: built\n/);
    assert.equal(JSON.parse(annotations[provenanceKey] ?? '{}').base.ref, `oci:${join(dir, 'oci')}:base`);
  });

  test('two applied images changing the same file: a warning naming the path and both images', async () => {
    const warning = first.events.find((event) => event.event === 'warning');
    assert.equal(warning?.event === 'warning' ? warning.layer : undefined, 'both');
    assert.deepEqual(warning?.event === 'warning' ? warning.paths : undefined, [`/opt/tools/tool (oci:${join(dir, 'oci')}:tools, oci:${join(dir, 'oci')}:tools2)`]);
    const both = await image('both');
    const tools = await image('tools');
    const tools2 = await image('tools2');
    assert.deepEqual(both.manifest.layers.map((layer) => layer.digest), [tools.manifest.layers[0], tools.manifest.layers[1], tools2.manifest.layers[1]].map((layer) => layer?.digest));
  });

  test('built again: every layer cached, imports fetched again but no container started', async () => {
    const again = await build(['-f', join(dir, 'stacker.yaml'), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots')]);
    assert.deepEqual(containersStarted(again), []);
    const before = outputsOf(first);
    for (const [name, output] of outputsOf(again)) {
      assert.equal(output.cached, true, name);
      assert.equal(output.digest, before.get(name)?.digest, name);
    }
  });
});
