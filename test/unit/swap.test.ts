import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sha256Digest } from '../../src/oci/digest.ts';
import { MediaType } from '../../src/oci/mediatypes.ts';
import type { Descriptor, ImageConfig, ImageManifest } from '../../src/oci/types.ts';
import { composeImage, type NamedImage } from '../../src/swap/compose.ts';
import { readProvenance, serializeImage } from '../../src/swap/image.ts';
import { encodeProvenance, type AppliedProvenance, type Provenance } from '../../src/swap/provenance.ts';
import { analyseOverlap, classifyTarEntry } from '../../src/swap/safety.ts';
import { findApplied, isRefusal, planSwap } from '../../src/swap/swap.ts';

/** A fake layer: digests derived from a name, so tests read as the seeds' example. */
function layer(name: string, mediaType: string = MediaType.ociLayerGzip): { descriptor: Descriptor; diffId: string } {
  return { descriptor: { mediaType, digest: sha256Digest(`blob ${name}`), size: name.length }, diffId: sha256Digest(`diff ${name}`) };
}

function image(names: string[], format: 'oci' | 'docker' = 'oci'): NamedImage['image'] {
  const layers = names.map((name) => layer(name, format === 'docker' ? MediaType.dockerLayerGzip : MediaType.ociLayerGzip));
  const config: ImageConfig = {
    architecture: 'amd64',
    os: 'linux',
    config: { Env: ['PATH=/bin'] },
    rootfs: { type: 'layers', diff_ids: layers.map((l) => l.diffId) },
    history: [{ created_by: 'ENV PATH', empty_layer: true }, ...names.map((name) => ({ created_by: `make ${name}` }))],
  };
  const manifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: format === 'docker' ? MediaType.dockerManifest : MediaType.ociManifest,
    config: { mediaType: format === 'docker' ? MediaType.dockerConfig : MediaType.ociConfig, digest: sha256Digest(JSON.stringify(config)), size: 1 },
    layers: layers.map((l) => l.descriptor),
  };
  return { manifest, config, digest: sha256Digest(JSON.stringify(manifest)) };
}

const named = (ref: string, names: string[], format: 'oci' | 'docker' = 'oci'): NamedImage => ({ ref, image: image(names, format) });
const digestsOf = (layers: Descriptor[]) => layers.map((l) => l.digest);
const own = (name: string) => ({ ...layer(name), history: { created_by: `run ${name}` } });

function serialized(composed: ReturnType<typeof composeImage>): NamedImage['image'] {
  const written = serializeImage(composed);
  return { manifest: written.manifest, config: composed.config, digest: written.manifestDescriptor.digest };
}

function composeA(format: 'oci' | 'docker' = 'oci') {
  const base = named('docker://reg/centos:latest', ['centos'], format);
  const ssl = named('docker://reg/ssl:latest', ['centos', 'ssl'], format);
  const python3 = named('docker://reg/python3:latest', ['centos', 'python3'], format);
  const composed = composeImage({ base, applied: [ssl, python3], own: [own('A')] });
  const written = serializeImage(composed);
  return { base, ssl, python3, composed, a: { manifest: written.manifest, config: composed.config, digest: written.manifestDescriptor.digest } };
}

test("compose: A = centos + ssl's own layer + python3's own layer + A's run layer, with provenance ranges", () => {
  const { composed, ssl, python3 } = composeA();
  assert.deepEqual(digestsOf(composed.manifest.layers), digestsOf([layer('centos'), layer('ssl'), layer('python3'), layer('A')].map((l) => l.descriptor)));
  assert.deepEqual(composed.config.rootfs.diff_ids, ['centos', 'ssl', 'python3', 'A'].map((n) => layer(n).diffId));
  assert.deepEqual(composed.config.history?.map((h) => h.created_by), ['ENV PATH', 'make centos', 'make ssl', 'make python3', 'run A']);
  assert.deepEqual(composed.provenance.base?.layers, { start: 0, count: 1 });
  assert.deepEqual(composed.provenance.applied.map((a) => [a.ref, a.digest, a.layers]), [
    [ssl.ref, ssl.image.digest, { start: 1, count: 1 }],
    [python3.ref, python3.image.digest, { start: 2, count: 1 }],
  ]);
  assert.deepEqual(composed.provenance.own.layers, { start: 3, count: 1 });
  assert.equal(composed.manifest.annotations?.['org.opencontainers.image.base.name'], 'reg/centos:latest');
});

test('compose keeps Docker schema2 images Docker, with provenance in a config label', () => {
  const { composed } = composeA('docker');
  assert.equal(composed.manifest.mediaType, MediaType.dockerManifest);
  assert.equal(composed.manifest.annotations, undefined);
  assert.ok(composed.config.config?.Labels?.['restack.dev/provenance']);
  assert.ok(composed.manifest.layers.slice(0, 3).every((l) => l.mediaType === MediaType.dockerLayerGzip));
});

test('serialisation is deterministic', () => {
  assert.deepEqual(serializeImage(composeA().composed).manifestDescriptor, serializeImage(composeA().composed).manifestDescriptor);
});

test("swap: python3+1 replaces only python3's slice; A's own layer and everything else stay", () => {
  const { a, python3 } = composeA();
  const provenance = readProvenance(a, 'A');
  assert.ok(provenance);
  const index = findApplied(provenance, (ref) => ref.startsWith('docker://reg/python3'));
  const python3v2 = named('docker://reg/python3:latest', ['centos', 'python3+1', 'python3+1 extra']);
  const plan = planSwap({ image: a, source: 'A', appliedIndex: index, previous: python3, replacement: python3v2 });
  assert.ok(!isRefusal(plan), isRefusal(plan) ? plan.message : '');
  assert.deepEqual(digestsOf(plan.manifest.layers), digestsOf(['centos', 'ssl', 'python3+1', 'python3+1 extra', 'A'].map((n) => layer(n).descriptor)));
  assert.equal(plan.manifest.layers[4], a.manifest.layers[3], "A's own descriptor is carried over as is");
  assert.deepEqual(plan.config.rootfs.diff_ids, ['centos', 'ssl', 'python3+1', 'python3+1 extra', 'A'].map((n) => layer(n).diffId));
  assert.deepEqual(plan.config.history?.map((h) => h.created_by), ['ENV PATH', 'make centos', 'make ssl', 'make python3+1', 'make python3+1 extra', 'run A']);
  assert.deepEqual(plan.provenance.applied[1]?.layers, { start: 2, count: 2 });
  assert.equal(plan.provenance.applied[1]?.digest, python3v2.image.digest);
  assert.deepEqual(plan.provenance.own.layers, { start: 4, count: 1 });
  assert.deepEqual(readProvenance({ manifest: plan.manifest, config: plan.config }, 'A2'), plan.provenance);
});

test('swap refuses when the new version has another base', () => {
  const { a, python3 } = composeA();
  const rebased = named('docker://reg/python3:latest', ['centos 9', 'python3+1']);
  const plan = planSwap({ image: a, source: 'A', appliedIndex: 1, previous: python3, replacement: rebased });
  assert.ok(isRefusal(plan));
  assert.equal(plan.reason, 'BaseChanged');
  assert.match(plan.message, /python3:latest's base changed.*rebuild/);
});

test("swap refuses a new version whose own base gained a layer, though it starts with the old base (the base update would land above ssl)", () => {
  const { a, python3 } = composeA();
  const updatedBase = named('docker://reg/centos:latest', ['centos', 'centos-update']);
  const python3v2 = { ref: 'docker://reg/python3:latest', image: { ...serialized(composeImage({ base: updatedBase, applied: [], own: [own('python3+1')] })) } };
  const plan = planSwap({ image: a, source: 'A', appliedIndex: 1, previous: python3, replacement: python3v2 });
  assert.ok(isRefusal(plan), isRefusal(plan) ? '' : `swapped to ${plan.manifest.layers.length} layers`);
  assert.equal(plan.reason, 'BaseChanged');
  assert.match(plan.message, /built on 2 layers .* on 1 layer /);
});

test("an image restack did not build: its base annotations, when both versions carry them, tell a changed base", () => {
  const annotated = (names: string[], baseDigest: string): NamedImage => {
    const plain = named('docker://reg/python3:latest', names);
    const manifest = { ...plain.image.manifest, annotations: { 'org.opencontainers.image.base.digest': baseDigest } };
    return { ref: plain.ref, image: { ...plain.image, manifest, digest: sha256Digest(JSON.stringify(manifest)) } };
  };
  const python3 = annotated(['centos', 'python3'], sha256Digest('centos 7'));
  const composed = composeImage({ base: named('docker://reg/centos:latest', ['centos']), applied: [python3], own: [own('A')] });
  const a = serialized(composed);
  const updated = annotated(['centos', 'centos-update', 'python3+1'], sha256Digest('centos 7 updated'));
  const plan = planSwap({ image: a, source: 'A', appliedIndex: 0, previous: python3, replacement: updated });
  assert.ok(isRefusal(plan) && plan.reason === 'BaseChanged', isRefusal(plan) ? plan.message : 'swapped');
  assert.match(plan.message, /says it is built on sha256:.* on sha256:.*; rebuild/);
  const rebuiltOnSameBase = annotated(['centos', 'python3+1'], sha256Digest('centos 7'));
  assert.ok(!isRefusal(planSwap({ image: a, source: 'A', appliedIndex: 0, previous: python3, replacement: rebuiltOnSameBase })));
});

test('swap refuses provenance that does not match the image it names: another digest, another range, another base', () => {
  const { a, python3, ssl } = composeA();
  const python3v2 = named('docker://reg/python3:latest', ['centos', 'python3+1']);
  const tampered = (edit: (provenance: Provenance) => Provenance) => {
    const provenance = readProvenance(a, 'A') as Provenance;
    return { ...a, manifest: { ...a.manifest, annotations: { ...a.manifest.annotations, 'restack.dev/provenance': encodeProvenance(edit(provenance)) } } };
  };
  const cases = {
    'a digest the repository holds for another image': { image: a, previous: { ...python3, image: ssl.image } },
    'a range over ssl': { image: tampered((p) => ({ ...p, applied: [p.applied[1], p.applied[0]].map((entry, i) => ({ ...(entry as AppliedProvenance), layers: { start: 1 + i, count: 1 } })) })), previous: python3 },
    'another base chain': { image: tampered((p) => ({ ...p, applied: p.applied.map((entry) => ({ ...entry, base: { count: 0, chain: '' } })) })), previous: python3 },
  };
  for (const [what, { image, previous }] of Object.entries(cases)) {
    const plan = planSwap({ image, source: 'A', appliedIndex: 1, previous, replacement: python3v2 });
    assert.ok(isRefusal(plan), what);
    assert.equal(plan.reason, 'Inconsistent', what);
    assert.match(plan.message, /A's provenance says layers 2\.\.2 are the own layers of .*python3.*rebuild/, what);
  }
});

test('a Docker schema2 image cannot take zstd or squashfs layers: refused (FormatMismatch); foreign layers keep Docker names', () => {
  const { a, python3 } = composeA('docker');
  for (const mediaType of [MediaType.ociLayerZstd, MediaType.stackerSquashfs]) {
    const zstd = { ref: 'docker://reg/python3:latest', image: image(['centos', 'python3+1'], 'docker') };
    zstd.image.manifest.layers[1] = { ...(zstd.image.manifest.layers[1] as Descriptor), mediaType };
    const plan = planSwap({ image: a, source: 'A', appliedIndex: 1, previous: python3, replacement: zstd });
    assert.ok(isRefusal(plan), `${mediaType} swapped into a Docker manifest`);
    assert.equal(plan.reason, 'FormatMismatch');
    assert.match(plan.message, new RegExp(`Docker schema2 image, which cannot name .*${mediaType.replace(/[.+]/g, '.')} layers; rebuild`));
  }
  const foreign = named('docker://reg/python3:latest', ['centos', 'python3+1']);
  foreign.image.manifest.layers[1] = { ...(foreign.image.manifest.layers[1] as Descriptor), mediaType: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip' };
  const plan = planSwap({ image: a, source: 'A', appliedIndex: 1, previous: python3, replacement: foreign });
  assert.ok(!isRefusal(plan), isRefusal(plan) ? plan.message : '');
  assert.equal(plan.manifest.layers[2]?.mediaType, 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip');
});

test("a swapped manifest drops its subject and the old config descriptor's embedded data and annotations", () => {
  const { a, python3 } = composeA();
  const stale = {
    ...a,
    manifest: {
      ...a.manifest,
      subject: { mediaType: MediaType.ociManifest, digest: sha256Digest('the image A signed'), size: 1 },
      config: { ...a.manifest.config, data: Buffer.from(JSON.stringify(a.config)).toString('base64'), annotations: { 'com.example.note': 'of the old config' } },
    },
  };
  const plan = planSwap({ image: stale, source: 'A', appliedIndex: 1, previous: python3, replacement: named('docker://reg/python3:latest', ['centos', 'python3+1']) });
  assert.ok(!isRefusal(plan), isRefusal(plan) ? plan.message : '');
  const written = serializeImage(plan).manifest;
  assert.equal(written.subject, undefined);
  assert.deepEqual(Object.keys(written.config).sort(), ['digest', 'mediaType', 'size']);
});

test('swap refuses an image without provenance', () => {
  const plan = planSwap({ image: image(['x']), source: 'X', appliedIndex: 0, previous: named('docker://reg/p:1', ['x']), replacement: named('docker://reg/p:1', ['x']) });
  assert.ok(isRefusal(plan) && plan.reason === 'NoProvenance');
});

test('the same swap twice gives the same digest', () => {
  const { a, python3: previous } = composeA();
  const replacement = named('docker://reg/python3:latest', ['centos', 'python3+1']);
  const once = planSwap({ image: a, source: 'A', appliedIndex: 1, previous, replacement });
  const twice = planSwap({ image: a, source: 'A', appliedIndex: 1, previous, replacement });
  assert.ok(!isRefusal(once) && !isRefusal(twice));
  assert.equal(serializeImage(once).manifestDescriptor.digest, serializeImage(twice).manifestDescriptor.digest);
});

test('overlap: a file the slice changes and a layer above also changed is reported; directories are not', () => {
  const entries = (names: [string, string][]) => names.map(([name, type]) => classifyTarEntry(name, type));
  const report = analyseOverlap(
    [{ digest: 'old', entries: entries([['usr/', 'directory'], ['usr/lib/libpython.so', 'file'], ['etc/ld.so.cache', 'file']]) },
     { digest: 'new', entries: entries([['./usr/lib/python3/.wh..wh..opq', 'file'], ['etc/ld.so.cache', 'file']]) }],
    [{ digest: 'own', entries: entries([['usr/', 'directory'], ['etc/ld.so.cache', 'file'], ['usr/lib/python3/site.py', 'file'], ['srv/a', 'file']]) },
     { digest: 'squash', unavailable: 'squashfs' }],
  );
  assert.deepEqual(report.overlaps, [
    { path: '/etc/ld.so.cache', above: ['own'] },
    { path: '/usr/lib/python3/site.py', above: ['own'] },
  ]);
  assert.deepEqual(report.unavailable, [{ digest: 'squash', reason: 'squashfs' }]);
  assert.deepEqual(classifyTarEntry('a/.wh.b', 'file'), { path: 'a/b', kind: 'whiteout' });
});
