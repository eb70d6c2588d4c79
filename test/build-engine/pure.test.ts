import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { pathsChangedBySeveral } from '../../src/engine/build/apply-overlaps.ts';
import { canonicalJson, layerCacheKey, type CacheKeyInput } from '../../src/engine/build/cache-key.ts';
import { bindSpecs, buildEnvironment } from '../../src/engine/build/environment.ts';
import { describeEvent, summarizeOutputs } from '../../src/engine/build/events.ts';
import {
  CommandError,
  configureImage,
  createdTimestamp,
  imageCommands,
  layerRecipeRecord,
  mergeEnvironment,
  recipeAnnotation,
  redact,
} from '../../src/engine/build/image-config.ts';
import { importName, importSource, importTarget, layerImports, overlayDirSpecs } from '../../src/engine/build/import-plan.ts';
import { ShellSyntaxError, splitShellWords } from '../../src/engine/build/shell-words.ts';
import { layerSchema, type Layer } from '../../src/stackerfile/schema.ts';
import type { ImageConfig, ImageManifest } from '../../src/oci/types.ts';

const layer = (value: unknown): Layer => layerSchema.parse(value);

describe('shell words (go-shlex, POSIX mode)', () => {
  test('blanks split; quotes group; backslashes escape', () => {
    assert.deepEqual(splitShellWords('  /bin/echo  "hello world" it\\\'s \'a "b"\' '), ['/bin/echo', 'hello world', "it's", 'a "b"']);
    assert.deepEqual(splitShellWords('a"b"c \'\' ""'), ['abc', '', '']);
    assert.deepEqual(splitShellWords('"x\\"y\\$z \\n"'), ['x"y$z \\n']);
    assert.deepEqual(splitShellWords('one \\\ntwo'), ['one', 'two']);
    assert.deepEqual(splitShellWords('$HOME *.txt # not a comment'), ['$HOME', '*.txt', '#', 'not', 'a', 'comment']);
  });
  test('an unterminated quote is an error', () => {
    assert.throws(() => splitShellWords('echo "open'), ShellSyntaxError);
    assert.throws(() => splitShellWords("echo 'open"), ShellSyntaxError);
    assert.throws(() => splitShellWords('echo \\'), ShellSyntaxError);
  });
});

describe('image config from the recipe', () => {
  test('commands: strings are split, lists kept, full_command sets the entrypoint and clears cmd', () => {
    assert.deepEqual(imageCommands(layer({ from: { type: 'scratch' }, cmd: 'echo "hi there"', entrypoint: ['/bin/sh', '-c'] })), {
      entrypoint: ['/bin/sh', '-c'],
      cmd: ['echo', 'hi there'],
    });
    assert.deepEqual(imageCommands(layer({ from: { type: 'scratch' }, cmd: 'ignored', full_command: '/app --serve' })), { entrypoint: ['/app', '--serve'] });
    assert.deepEqual(imageCommands(layer({ from: { type: 'scratch' } })), {});
    assert.throws(() => imageCommands(layer({ from: { type: 'scratch' }, cmd: 'echo "x' })), (error: CommandError) => error.field === 'cmd');
  });

  test('created is SOURCE_DATE_EPOCH as RFC 3339, else the epoch', () => {
    assert.equal(createdTimestamp(undefined), '1970-01-01T00:00:00Z');
    assert.equal(createdTimestamp(1700000000), '2023-11-14T22:13:20Z');
  });

  test('environment replaces the base variable of the same name and gets a default PATH', () => {
    assert.deepEqual(mergeEnvironment(['A=1', 'B=2'], { B: '3', C: '4' }), ['A=1', 'B=3', 'C=4', 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin']);
    assert.deepEqual(mergeEnvironment(['PATH=/bin'], {}), ['PATH=/bin']);
  });

  test('substituted values are redacted from the recorded recipe, longest first', () => {
    assert.equal(redact('token=s3cr3t and s3cr3t-long', ['s3cr3t', 's3cr3t-long', '']), 'token=<redacted> and <redacted>');
    const record = layerRecipeRecord('app', layer({ from: { type: 'scratch' }, run: 'echo s3cr3t' }), ['s3cr3t']);
    assert.equal(record, 'app:\n  from:\n    type: scratch\n  run: echo <redacted>\n');
  });

  test('config and annotations: recipe settings over the base, commands not inherited, provenance never overridden', () => {
    const manifest: ImageManifest = {
      schemaVersion: 2,
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: '', size: 0 },
      layers: [],
      annotations: { 'restack.dev/provenance': '{}' },
    };
    const config: ImageConfig = {
      created: '2020-01-01T00:00:00Z',
      author: 'someone',
      architecture: 'amd64',
      os: 'linux',
      config: { Env: ['PATH=/bin'], Cmd: ['/bin/bash'], Labels: { base: '1', gen: 'base' }, Volumes: { '/data': {} }, WorkingDir: '/' },
      rootfs: { type: 'layers', diff_ids: [] },
    };
    const recipe = layer({
      from: { type: 'scratch' },
      environment: { FOO: 'bar' },
      labels: { gen: 'recipe' },
      annotations: { 'restack.dev/provenance': 'forged', note: 'x' },
      volumes: ['/cache'],
      working_dir: '/srv',
      runtime_user: 'app',
    });
    const out = configureImage({ manifest, config }, { layer: recipe, commands: { cmd: ['run'] }, generatedLabels: { gen: 'generated', other: 'y' }, created: '1970-01-01T00:00:00Z', recipeRecord: 'R' });
    assert.deepEqual(out.manifest.annotations, { 'restack.dev/provenance': '{}', note: 'x', [recipeAnnotation]: 'R' });
    assert.equal(out.config.created, '1970-01-01T00:00:00Z');
    assert.equal(out.config.author, undefined);
    assert.deepEqual(out.config.config, {
      Env: ['PATH=/bin', 'FOO=bar'],
      Labels: { base: '1', gen: 'recipe', other: 'y' },
      Volumes: { '/data': {}, '/cache': {} },
      WorkingDir: '/srv',
      Cmd: ['run'],
      User: 'app',
    });
  });
});

describe('cache key', () => {
  const input: CacheKeyInput = {
    definition: layer({ from: { type: 'docker', url: 'docker://r/base:1' }, run: 'make' }),
    base: { digest: 'sha256:aa' },
    applied: ['sha256:bb'],
    imports: ['cc'],
    sourceDateEpoch: undefined,
    layerType: 'tar',
    platform: { os: 'linux', architecture: 'amd64' },
  };
  test('is stable under key order and changes with every input', () => {
    assert.equal(canonicalJson({ b: 1, a: [{ d: 2, c: undefined }] }), '{"a":[{"d":2}],"b":1}');
    const key = layerCacheKey(input);
    assert.equal(layerCacheKey({ ...input, definition: layer({ run: 'make', from: { url: 'docker://r/base:1', type: 'docker' } }) }), key);
    const variants: Partial<CacheKeyInput>[] = [
      { definition: layer({ from: { type: 'docker', url: 'docker://r/base:1' }, run: 'make install' }) },
      { base: { digest: 'sha256:ab' } },
      { base: { tarball: 'aa' } },
      { applied: ['sha256:bc'] },
      { imports: ['cd'] },
      { sourceDateEpoch: 0 },
      { layerType: 'squashfs' },
      { platform: { os: 'linux', architecture: 'arm64' } },
    ];
    for (const variant of variants) assert.notEqual(layerCacheKey({ ...input, ...variant }), key, JSON.stringify(variant));
  });
});

describe('imports', () => {
  test('sources: local paths from the recipe directory, URLs, stacker://layer/path', () => {
    assert.deepEqual(importSource('files/a', '/recipes'), { kind: 'local', path: '/recipes/files/a' });
    assert.deepEqual(importSource('/abs', '/recipes'), { kind: 'local', path: '/abs' });
    assert.deepEqual(importSource('https://h/x.tgz', '/r'), { kind: 'http', url: 'https://h/x.tgz' });
    assert.deepEqual(importSource('stacker://first/usr/bin/tool', '/r'), { kind: 'stacker', layer: 'first', path: '/usr/bin/tool' });
    assert.equal(importName('https://h/dl/x.tgz?v=1'), 'x.tgz');
    assert.equal(importName('folder/'), 'folder');
  });

  test('imports and the deprecated import: with their fields and where run sees them', () => {
    const spec = layerImports(layer({ from: { type: 'scratch' }, imports: ['a', { path: 'b', hash: 'AB'.repeat(32), dest: '/b', mode: 0o600, uid: 5 }] }), '/r');
    assert.equal(spec.location, '/stacker/imports');
    assert.deepEqual(spec.specs[1], { field: 'imports.1', written: 'b', source: { kind: 'local', path: '/r/b' }, hash: 'ab'.repeat(32), dest: '/b', mode: 0o600, uid: 5 });
    const old = layerImports(layer({ from: { type: 'scratch' }, import: 'x' }), '/r');
    assert.equal(old.location, '/stacker');
    assert.equal(old.specs[0]?.field, 'import.0');
  });

  test('overlay_dirs are directory imports whose contents go to dest (default /)', () => {
    assert.deepEqual(overlayDirSpecs(layer({ from: { type: 'scratch' }, overlay_dirs: [{ source: 'etc' }, { source: '/srv/www/', dest: '/var/www' }] }), '/r'), [
      { field: 'overlay_dirs.0', written: 'etc/', source: { kind: 'local', path: '/r/etc' }, dest: '/' },
      { field: 'overlay_dirs.1', written: '/srv/www/', source: { kind: 'local', path: '/srv/www' }, dest: '/var/www' },
    ]);
    assert.equal(importTarget('etc/', '/', true), '/');
  });

  test('dest placement follows stacker: a trailing / on dest means "into", on a source directory "its contents"', () => {
    assert.equal(importTarget('test_file', '/files/', false), '/files/test_file');
    assert.equal(importTarget('test_file2', '/file2', false), '/file2');
    assert.equal(importTarget('test_file', '/usr/bin', false), '/usr/bin');
    assert.equal(importTarget('folder1', '/folder2', true), '/folder2');
    assert.equal(importTarget('folder1/', '/folder2', true), '/folder2');
    assert.equal(importTarget('folder1', '/folder2/', true), '/folder2/folder1');
    assert.equal(importTarget('folder1/', '/folder2/', true), '/folder2');
  });
});

describe('build environment', () => {
  test('host proxies pass by default; build_env_passthrough replaces the list; build_env and the layer name are added', () => {
    const host = { http_proxy: 'http://p', HOME: '/root', SECRET: 's', TERM: 'xterm' };
    assert.deepEqual(buildEnvironment(layer({ from: { type: 'scratch' } }), 'x', host), { TERM: 'xterm', http_proxy: 'http://p', STACKER_LAYER_NAME: 'x' });
    assert.deepEqual(buildEnvironment(layer({ from: { type: 'scratch' }, build_env_passthrough: ['SEC.*'], build_env: { A: '1', EMPTY: '' } }), 'y', host), {
      SECRET: 's',
      A: '1',
      STACKER_LAYER_NAME: 'y',
    });
  });
  test('binds: PATH, SOURCE -> DEST and maps, relative sources from the recipe directory', () => {
    assert.deepEqual(bindSpecs(layer({ from: { type: 'scratch' }, binds: ['/dev/fuse', 'cache -> /root/.cache', { source: '/srv' }] }), '/r'), [
      { source: '/dev/fuse', dest: '/dev/fuse' },
      { source: '/r/cache', dest: '/root/.cache' },
      { source: '/srv', dest: '/srv' },
    ]);
  });
});

test('paths changed by more than one applied image are found; directories do not count', () => {
  const shared = pathsChangedBySeveral([
    { ref: 'ssl', layers: [{ digest: 'sha256:1', entries: [{ path: 'etc', kind: 'directory' }, { path: 'etc/ld.so.cache', kind: 'file' }, { path: 'usr/lib/ssl', kind: 'file' }] }] },
    { ref: 'python3', layers: [{ digest: 'sha256:2', entries: [{ path: 'etc', kind: 'directory' }, { path: 'etc/ld.so.cache', kind: 'file' }] }, { digest: 'sha256:3', unavailable: 'squashfs' }] },
  ]);
  assert.deepEqual(shared, [{ path: '/etc/ld.so.cache', refs: ['ssl', 'python3'] }]);
});

test('events read as progress lines; the summary names every output', () => {
  assert.equal(describeEvent({ event: 'layer-start', layer: 'A', index: 3, total: 3, buildOnly: false }), '[3/3] A');
  assert.equal(describeEvent({ event: 'step', layer: 'A', step: 'run', message: 'in /x', elapsedMs: 1250 }), '  A: run in /x (1.3s)');
  assert.equal(describeEvent({ event: 'output', layer: 'A', line: 'hello' }), 'A: hello');
  assert.equal(describeEvent({ event: 'layer-done', layer: 'A', digest: 'sha256:1', cached: true, ownLayers: 1, bytes: 0, elapsedMs: 10 }), '  A: done sha256:1 (cached, 0.0s)');
  assert.equal(describeEvent({ event: 'warning', layer: 'A', message: 'm', paths: ['/p'] }), '  A: warning: m\n    /p');
  assert.equal(describeEvent({ event: 'build-done', outputs: [], elapsedMs: 1 }), undefined);
  const provenance = { version: 1 as const, base: null, applied: [], own: { layers: { start: 0, count: 1 } } };
  assert.equal(
    summarizeOutputs([
      { name: 'b', ref: 'oci:oci:b', digest: 'sha256:b', buildOnly: true, cached: false, provenance, pushed: [] },
      { name: 'A', ref: 'oci:oci:A', digest: 'sha256:a', buildOnly: false, cached: true, provenance, pushed: ['docker://r/p/a:latest@sha256:a'] },
    ]),
    'oci:oci:b@sha256:b (build only)\noci:oci:A@sha256:a (cached)\n  pushed docker://r/p/a:latest@sha256:a',
  );
});
