import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { inspectImage } from '../../src/engine/inspect.ts';
import { LayerChangesCache } from '../../src/engine/layer-changes.ts';
import { swapDependency } from '../../src/engine/swap.ts';
import { restack } from '../cli/restack.ts';
import { composeToStore } from '../../src/engine/compose.ts';
import { makeImage, makeLayer, validateImage, writeImage, type BuiltLayer } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered, pushSeeds } from './seeds.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

function layerDigests(output: string): string[] {
  return (JSON.parse(output) as { platforms: { layers: { digest: string }[] }[] }).platforms[0]?.layers.map((layer) => layer.digest) ?? [];
}

describe('restack swap against docker-registry', { skip }, () => {
  const running = registry as RunningRegistry;
  after(() => running.stop());
  const prefix = () => `docker://${running.host}/seeds`;

  let seeds: Awaited<ReturnType<typeof pushSeeds>>;
  before(async () => {
    seeds = await pushSeeds(prefix());
  });

  test('A is composed as [base, ssl, python3, own] with provenance, and inspect shows the origins', async () => {
    const result = await restack(['inspect', `${prefix()}/a:latest`, '--json']);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.deepEqual(layerDigests(result.stdout), [seeds.base, seeds.ssl, seeds.python3, seeds.own].map((layer) => layer.descriptor.digest));
    const text = await restack(['inspect', `${prefix()}/a:latest`]);
    assert.match(text.stdout, /base docker:\/\/.*\/seeds\/base:latest@sha256:/);
    assert.match(text.stdout, /apply docker:\/\/.*\/seeds\/python3:latest@sha256:/);
    assert.match(text.stdout, /\sown$/m);
  });

  test('python3+1 is swapped in: same base, ssl and own layers, no layer bytes uploaded, accepted by skopeo and umoci', async () => {
    const python3v2 = await makeLayer({ 'usr/bin/python3': 'python 3.12\n' });
    await pushLayered(prefix(), 'python3', [seeds.base, python3v2]);
    const dry = await restack(['swap', `${prefix()}/a:latest`, '--dependency', `${prefix()}/python3:latest`, '--dry-run', '--json']);
    assert.equal(dry.exitCode, 0, dry.stderr);
    assert.equal((JSON.parse(dry.stdout) as { status: string }).status, 'planned');
    assert.equal((await inspectImage(open(`${prefix()}/a:latest`))).digest, seeds.a, 'a dry run changes nothing');

    const result = await restack(['swap', `${prefix()}/a:latest`, '--dependency', `${prefix()}/python3:latest`, '--tag', 'swapped', '--json']);
    assert.equal(result.exitCode, 0, result.stderr);
    const outcome = JSON.parse(result.stdout) as { status: string; before: string; after: string; transfers: Record<string, number>; requests: { uploadedBlobBytes?: number } };
    assert.equal(outcome.status, 'swapped');
    assert.equal(outcome.before, seeds.a);
    assert.deepEqual(outcome.transfers, { present: 0, mounted: 1, uploaded: 0 });

    const a2 = await restack(['inspect', `${prefix()}/a:latest`, '--json']);
    assert.deepEqual(layerDigests(a2.stdout), [seeds.base, seeds.ssl, python3v2, seeds.own].map((layer) => layer.descriptor.digest));
    const target = open(`${prefix()}/a:latest`);
    await validateImage(target.store, target.repository, 'latest');
    assert.equal((await inspectImage(open(`${prefix()}/a:swapped`))).digest, outcome.after);

    const skopeo = await execa('skopeo', ['inspect', '--tls-verify=false', `docker://${running.host}/seeds/a:latest`]);
    assert.equal((JSON.parse(skopeo.stdout) as { Layers: string[] }).Layers.length, 4);
    const work = await mkdtemp(join(tmpdir(), 'restack-umoci-'));
    await execa('skopeo', ['copy', '--src-tls-verify=false', `docker://${running.host}/seeds/a:latest`, `oci:${work}/layout:a`]);
    await execa('umoci', ['unpack', '--rootless', '--image', `${work}/layout:a`, `${work}/bundle`]);
    assert.equal(await readFile(join(work, 'bundle/rootfs/usr/bin/python3'), 'utf8'), 'python 3.12\n');
    assert.equal(await readFile(join(work, 'bundle/rootfs/srv/A/app.py'), 'utf8'), 'print("A")\n');
    assert.equal(await readFile(join(work, 'bundle/rootfs/usr/lib/libssl.so.3'), 'utf8'), 'ssl 3.0\n');

    const again = await restack(['swap', `${prefix()}/a:latest`, '--dependency', `${prefix()}/python3:latest`, '--json']);
    assert.equal((JSON.parse(again.stdout) as { status: string; after: string }).status, 'up-to-date');
    assert.equal((JSON.parse(again.stdout) as { after: string }).after, outcome.after);
  });

  test('a dependency that A does not apply is refused naming what A applies; nothing changes', async () => {
    const before = (await inspectImage(open(`${prefix()}/a:latest`))).digest;
    const result = await restack(['swap', `${prefix()}/a:latest`, '--dependency', `${prefix()}/base:latest`]);
    assert.equal(result.exitCode, 3);
    assert.match(result.stderr, /refused \(Inconsistent\): .*does not record .*base:latest as applied \(it records: .*ssl:latest, .*python3:latest\)/);
    assert.equal((await inspectImage(open(`${prefix()}/a:latest`))).digest, before);
  });

  test('a new python3 on another base is refused with the reason (rebuild), exit 3', async () => {
    const otherBase = await makeLayer({ 'etc/os-release': 'ID=other\n' });
    const python3v3 = await makeLayer({ 'usr/bin/python3': 'python 3.13\n' });
    await pushLayered(prefix(), 'python3', [otherBase, python3v3]);
    const before = (await inspectImage(open(`${prefix()}/a:latest`))).digest;
    const result = await restack(['swap', `${prefix()}/a:latest`, '--dependency', `${prefix()}/python3:latest`]);
    assert.equal(result.exitCode, 3);
    assert.match(result.stderr, /refused \(BaseChanged\): .*python3:latest's base changed.*rebuild/);
    assert.equal((await inspectImage(open(`${prefix()}/a:latest`))).digest, before);
  });

  test('a python3 that touches a file A also changed is refused with the path, unless overlap is allowed', async () => {
    const overlapPrefix = `${prefix()}-overlap`;
    const seeded = await pushSeeds(overlapPrefix, { ownFiles: { 'etc/ld.so.cache': 'cache with A\n' } });
    const python3v2 = await makeLayer({ 'usr/bin/python3': 'python 3.12\n', 'etc/ld.so.cache': 'cache with python 3.12\n' });
    await pushLayered(overlapPrefix, 'python3', [seeded.base, python3v2]);
    const refused = await restack(['swap', `${overlapPrefix}/a:latest`, '--dependency', `${overlapPrefix}/python3:latest`]);
    assert.equal(refused.exitCode, 3, refused.stderr);
    assert.match(refused.stderr, /refused \(Overlap\): .* changes \/etc\/ld\.so\.cache, which .* layers above it also changed/);
    const allowed = await restack(['swap', `${overlapPrefix}/a:latest`, '--dependency', `${overlapPrefix}/python3:latest`, '--allow-overlap']);
    assert.equal(allowed.exitCode, 0, allowed.stderr);
    assert.match(allowed.stdout, /^swapped/);
  });

  test('Docker schema2 images with uncompressed layers swap too, keeping provenance in a config label', async () => {
    const dockerPrefix = `${prefix()}-docker`;
    const seeded = await pushSeeds(dockerPrefix, { format: 'docker', compression: 'none' });
    const inspected = await inspectImage(open(`${dockerPrefix}/a:latest`));
    assert.equal(inspected.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.ok(inspected.platforms[0]?.config.labels['restack.dev/provenance']);
    const python3v2 = await makeLayer({ 'usr/bin/python3': 'python 3.12\n' }, { compression: 'none' });
    await pushLayered(dockerPrefix, 'python3', [seeded.base, python3v2], 'docker');
    const outcome = await swapDependency({
      target: open(`${dockerPrefix}/a:latest`),
      dependency: open(`${dockerPrefix}/python3:latest`),
      layerChanges: new LayerChangesCache(),
    });
    assert.equal(outcome.status, 'swapped', outcome.refusal?.message);
    const target = open(`${dockerPrefix}/a:latest`);
    const image = await validateImage(target.store, target.repository, 'latest');
    assert.equal(image.manifest.mediaType, 'application/vnd.docker.distribution.manifest.v2+json');
    assert.ok(image.manifest.layers.every((layer) => layer.mediaType === 'application/vnd.docker.image.rootfs.diff.tar'));
  });

  test('two tags of one repository are two dependencies: a new yq replaces the yq slice, never jq\'s', async () => {
    const tools = `${prefix()}-tools`;
    const base = await makeLayer({ 'etc/os-release': 'ID=tiny\n' });
    const [jq, yq, yq2] = await Promise.all([makeLayer({ 'usr/bin/jq': 'jq 1\n' }), makeLayer({ 'usr/bin/yq': 'yq 1\n' }), makeLayer({ 'usr/bin/yq': 'yq 2\n' })]);
    const pushTool = async (tag: string, layer: BuiltLayer) => {
      const target = open(`${tools}/tools:${tag}`);
      await writeImage(target.store, target.repository, makeImage({ layers: [base, layer] }), tag);
    };
    await pushTool('jq', jq);
    await pushTool('yq', yq);
    await composeToStore({ base: null, platform: { os: 'linux', architecture: 'amd64' }, applied: [open(`${tools}/tools:jq`), open(`${tools}/tools:yq`)], target: open(`${tools}/app:latest`) });
    await pushTool('yq', yq2);
    const outcome = await swapDependency({ target: open(`${tools}/app:latest`), dependency: open(`${tools}/tools:yq`), layerChanges: new LayerChangesCache() });
    assert.equal(outcome.status, 'swapped', outcome.refusal?.message);
    const layers = (await inspectImage(open(`${tools}/app:latest`))).platforms[0]?.layers.map((layer) => layer.digest);
    assert.deepEqual(layers, [base, jq, base, yq2].map((layer) => layer.descriptor.digest));
    const again = await swapDependency({ target: open(`${tools}/app:latest`), dependency: open(`${tools}/tools:yq`), layerChanges: new LayerChangesCache() });
    assert.equal(again.status, 'up-to-date', 'no flip back');
  });
});
