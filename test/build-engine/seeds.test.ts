/**
 * The seeds' example built for real: ssl and python3 on a busybox base, then A applying both and
 * running on top, pushed to docker-registry, checked by skopeo and umoci, rebuilt from cache, and
 * finally updated by `restack swap` after python3 is rebuilt: the builder's provenance is what the
 * swap engine reads.
 */
import assert from 'node:assert/strict';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { execa } from 'execa';
import { readImage } from '../../src/oci/open.ts';
import { recipeAnnotation } from '../../src/engine/build/image-config.ts';
import { provenanceKey } from '../../src/swap/provenance.ts';
import { restack } from '../cli/restack.ts';
import { validateImage } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open } from '../swap/seeds.ts';
import { tempDir } from '../build/helpers.ts';
import { build, containersStarted, outputsOf, pushBusyboxBase, suiteDir } from './helpers.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

describe('restack build: the seeds example against docker-registry', { skip }, () => {
  const running = registry as RunningRegistry;
  after(async () => {
    await running.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const prefix = () => `docker://${running.host}/seeds`;
  let dir: string;
  let args: (recipe: string, ...more: string[]) => string[];

  const layers = async (name: string) => (await readImage(open(`${prefix()}/${name}:latest`).store, `seeds/${name}`, 'latest')).manifest.layers.map((layer) => layer.digest);

  before(async () => {
    dir = await suiteDir('restack-seeds-');
    await pushBusyboxBase(`${prefix()}/base:latest`);
    const from = `{type: docker, url: "${prefix()}/base:latest"}`;
    await writeFile(
      join(dir, 'deps.yaml'),
      [
        `ssl:     {from: ${from}, run: [mkdir -p /usr/lib, echo openssl 3.0 > /usr/lib/ssl.txt]}`,
        `python3: {from: ${from}, run: [mkdir -p /usr/bin, 'echo python \${{PYVER:3.11}} > /usr/bin/python3']}`,
        '',
      ].join('\n'),
    );
    await writeFile(
      join(dir, 'a.yaml'),
      [
        'A:',
        `  from: ${from}`,
        `  apply: ["${prefix()}/ssl:latest", "${prefix()}/python3:latest"]`,
        '  run: |',
        '    mkdir -p /srv',
        '    cat /usr/lib/ssl.txt /usr/bin/python3 > /srv/A',
        '',
      ].join('\n'),
    );
    args = (recipe, ...more) => ['-f', join(dir, recipe), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots'), '--push', prefix(), ...more];
  });

  test('ssl and python3, then A: A is [base, ssl diff, python3 diff, own], the applied diffs byte-identical', async () => {
    const deps = outputsOf(await build(args('deps.yaml')));
    assert.deepEqual(deps.get('ssl')?.pushed, [`${prefix()}/ssl:latest@${deps.get('ssl')?.digest}`]);
    const a = outputsOf(await build(args('a.yaml')));
    assert.deepEqual(a.get('A')?.pushed, [`${prefix()}/a:latest@${a.get('A')?.digest}`], 'registry repositories are lowercase');

    const [base] = await layers('base');
    const ssl = await layers('ssl');
    const python3 = await layers('python3');
    const built = await layers('a');
    assert.equal(built.length, 4);
    assert.deepEqual(built.slice(0, 3), [base, ssl[1], python3[1]]);
    assert.deepEqual(ssl.slice(0, 1), [base]);

    const store = open(`${prefix()}/a:latest`).store;
    for (const name of ['ssl', 'python3', 'a']) await validateImage(store, `seeds/${name}`, 'latest');
    const image = await readImage(store, 'seeds/a', 'latest');
    assert.equal(image.manifest.mediaType, 'application/vnd.oci.image.manifest.v1+json');
    assert.equal(image.manifestDescriptor.digest, a.get('A')?.digest);
    assert.deepEqual(JSON.parse(image.manifest.annotations?.[provenanceKey] ?? '{}'), a.get('A')?.provenance);
    const provenance = a.get('A')?.provenance;
    assert.equal(provenance?.base?.ref, `${prefix()}/base:latest`);
    assert.deepEqual(provenance?.applied.map((entry) => [entry.ref, entry.layers, entry.base.count]), [
      [`${prefix()}/ssl:latest`, { start: 1, count: 1 }, 1],
      [`${prefix()}/python3:latest`, { start: 2, count: 1 }, 1],
    ]);
    assert.deepEqual(provenance?.own, { layers: { start: 3, count: 1 } });
  });

  test('skopeo copies A and umoci unpacks it: every layer\'s file is there', async (t) => {
    const work = await tempDir(t, 'restack-umoci-');
    await execa('skopeo', ['copy', '--quiet', '--src-tls-verify=false', `${prefix()}/a:latest`, `oci:${work}/layout:a`]);
    await execa('umoci', ['unpack', '--rootless', '--image', `${work}/layout:a`, `${work}/bundle`]);
    const rootfs = join(work, 'bundle', 'rootfs');
    assert.equal(await readFile(join(rootfs, 'usr/lib/ssl.txt'), 'utf8'), 'openssl 3.0\n');
    assert.equal(await readFile(join(rootfs, 'usr/bin/python3'), 'utf8'), 'python 3.11\n');
    assert.equal(await readFile(join(rootfs, 'srv/A'), 'utf8'), 'openssl 3.0\npython 3.11\n');
    assert.ok((await readFile(join(rootfs, 'bin/busybox'))).length > 100_000);
  });

  test('the same builds again are entirely cached: no container, identical digests', async () => {
    const firstDeps = await build(args('deps.yaml'));
    const firstA = await build(args('a.yaml'));
    for (const run of [firstDeps, firstA]) {
      assert.deepEqual(containersStarted(run), []);
      assert.ok(run.events.filter((event) => event.event === 'layer-done').every((event) => event.event === 'layer-done' && event.cached));
    }
    const again = outputsOf(firstA);
    const pushedDigest = (await readImage(open(`${prefix()}/a:latest`).store, 'seeds/a', 'latest')).manifestDescriptor.digest;
    assert.equal(again.get('A')?.digest, pushedDigest);
  });

  test('python3 rebuilt with a changed run line is swapped into A: only its slice changes', async () => {
    const before = await layers('a');
    const rebuilt = await build(args('deps.yaml', '--substitute', 'PYVER=3.12.1'));
    const deps = outputsOf(rebuilt);
    assert.deepEqual(containersStarted(rebuilt), ['python3'], 'ssl is cached, python3 is rebuilt');
    assert.equal(deps.get('ssl')?.cached, true);
    const python3 = await readImage(open(`${prefix()}/python3:latest`).store, 'seeds/python3', 'latest');
    const record = python3.manifest.annotations?.[recipeAnnotation] ?? '';
    assert.match(record, /echo python <redacted> > \/usr\/bin\/python3/);
    assert.doesNotMatch(record, /3\.12\.1/);

    const swap = await restack(['swap', `${prefix()}/a:latest`, '--dependency', `${prefix()}/python3:latest`, '--json']);
    assert.equal(swap.exitCode, 0, String(swap.stderr) + String(swap.stdout));
    assert.equal((JSON.parse(String(swap.stdout)) as { status: string }).status, 'swapped');
    const after = await layers('a');
    assert.deepEqual([after[0], after[1], after[3]], [before[0], before[1], before[3]]);
    assert.equal(after[2], python3.manifest.layers[1]?.digest);
    assert.notEqual(after[2], before[2]);
    await validateImage(open(`${prefix()}/a:latest`).store, 'seeds/a', 'latest');
  });
});
