import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { execa } from 'execa';
import type { BuildOutput } from '../../src/engine/build/events.ts';
import { decodeResultMessage, encodeResultMessage, gzipMarker, resultOutputs, terminationMessageLimit, type ResultMessage } from '../../src/engine/build/result-message.ts';
import { build, errorEvent, outputsOf, suiteDir, writeBusyboxTarball } from './helpers.ts';

const digest = (seed: string) => `sha256:${createHash('sha256').update(seed).digest('hex')}`;

/** `count` outputs, each with a base and two applied inputs: digests are incompressible, as in life. */
function outputs(count: number): ResultMessage {
  return {
    v: 1,
    outputs: Array.from({ length: count }, (_, i) => ({
      name: `layer-${i}`,
      digest: digest(`out-${i}`),
      ref: `registry.example:5000/team/layer-${i}:latest`,
      inputs: [
        { ref: 'docker://registry.example:5000/base/centos:latest', role: 'from' as const, digest: digest(`base-${i}`) },
        { ref: 'docker://registry.example:5000/team/ssl:latest', role: 'apply' as const, digest: digest(`ssl-${i}`) },
        { ref: 'docker://registry.example:5000/team/python3:latest', role: 'apply' as const, digest: digest(`py-${i}`) },
      ],
    })),
  };
}

test('a small result is plain JSON and decodes to itself', () => {
  const message = outputs(2);
  const text = encodeResultMessage(message);
  assert.ok(text.startsWith('{'));
  assert.deepEqual(decodeResultMessage(text), message);
});

test('a result over 4096 bytes is compressed, losing nothing', () => {
  const message = outputs(12);
  assert.ok(JSON.stringify(message).length > terminationMessageLimit);
  const text = encodeResultMessage(message);
  assert.ok(text.startsWith(gzipMarker));
  assert.ok(Buffer.byteLength(text) <= terminationMessageLimit);
  assert.deepEqual(decodeResultMessage(text), message);
});

test('many outputs: inputs, then refs are dropped, and the result says so', () => {
  const withoutInputs = decodeResultMessage(encodeResultMessage(outputs(40)));
  assert.deepEqual(withoutInputs?.dropped, ['inputs']);
  assert.ok(withoutInputs !== undefined && 'outputs' in withoutInputs);
  assert.equal(withoutInputs.outputs.length, 40);
  assert.equal(withoutInputs.outputs[39]?.digest, digest('out-39'));
  assert.equal(withoutInputs.outputs[0]?.ref, 'registry.example:5000/team/layer-0:latest');

  const bare = decodeResultMessage(encodeResultMessage(outputs(70)));
  assert.deepEqual(bare?.dropped, ['inputs', 'refs']);
  assert.ok(bare !== undefined && 'outputs' in bare);
  assert.deepEqual(bare.outputs[69], { name: 'layer-69', digest: digest('out-69') });

  const tooMany = encodeResultMessage(outputs(400));
  assert.ok(Buffer.byteLength(tooMany) <= terminationMessageLimit);
  const failed = decodeResultMessage(tooMany);
  assert.ok(failed !== undefined && 'error' in failed);
  assert.equal(failed.error.code, 'RESULT_TOO_LARGE');
  assert.match(failed.error.message, /400 outputs do not fit in 4096 bytes/);
});

test('a failure keeps its newest last lines when they do not all fit', () => {
  const lastLines = Array.from({ length: 400 }, (_, i) => `line ${i} ${digest(`noise-${i}`)}`);
  const text = encodeResultMessage({ v: 1, error: { step: 'run', layer: 'A', code: 'RUN_FAILED', message: 'run: exit code 2', lastLines } });
  assert.ok(Buffer.byteLength(text) <= terminationMessageLimit);
  const decoded = decodeResultMessage(text);
  assert.ok(decoded !== undefined && 'error' in decoded);
  assert.equal(decoded.error.code, 'RUN_FAILED');
  assert.equal(decoded.error.layer, 'A');
  assert.equal(decoded.error.lastLines?.at(-1), lastLines.at(-1), 'the newest line survives');
  assert.ok((decoded.error.lastLines?.length ?? 0) < lastLines.length);
  assert.match(decoded.dropped?.[0] ?? '', /^\d+ of the last lines$/);
});

test('text that is not a result (the log tail the kubelet falls back to) decodes to undefined', () => {
  assert.equal(decodeResultMessage('Killed'), undefined);
  assert.equal(decodeResultMessage('{"event":"build-done"}'), undefined);
  assert.equal(decodeResultMessage(`${gzipMarker}not base64 gzip`), undefined);
});

test('the outputs reported: published ones only, ref where pushed, inputs from provenance', () => {
  const built = (name: string, buildOnly: boolean): BuildOutput => ({
    name,
    ref: `oci:oci:${name}`,
    digest: digest(name),
    buildOnly,
    cached: false,
    pushed: buildOnly ? [] : [`docker://127.0.0.1:5000/team/${name.toLowerCase()}:latest@${digest(name)}`],
    provenance: {
      version: 1,
      base: { ref: 'docker://127.0.0.1:5000/base:latest', digest: digest('base'), layers: { start: 0, count: 1 } },
      applied: [{ ref: 'docker://127.0.0.1:5000/team/ssl:latest', digest: digest('ssl'), layers: { start: 1, count: 1 }, base: { count: 1, chain: 'x' } }],
      own: { layers: { start: 2, count: 1 } },
    },
  });
  assert.deepEqual(resultOutputs([built('tools', true), built('A', false)]), [
    {
      name: 'A',
      digest: digest('A'),
      ref: '127.0.0.1:5000/team/a:latest',
      inputs: [
        { ref: 'docker://127.0.0.1:5000/base:latest', role: 'from', digest: digest('base') },
        { ref: 'docker://127.0.0.1:5000/team/ssl:latest', role: 'apply', digest: digest('ssl') },
      ],
    },
  ]);
});

test('restack build --termination-log writes the result: the outputs, or the failure with its layer and step', async () => {
  const dir = await suiteDir('restack-termination-log-');
  try {
    await writeBusyboxTarball(join(dir, 'rootfs.tar.gz'));
    const base = 'base:\n  from: {type: tar, url: rootfs.tar.gz}\n  build_only: true\n';
    const recipe = async (name: string, run: string) => {
      await writeFile(join(dir, name), `${base}app:\n  from: {type: built, tag: base}\n  run: ${JSON.stringify(run)}\n`);
      return ['-f', name, '--oci-dir', 'oci', '--roots-dir', 'roots', '--termination-log', 'result'];
    };
    const built = outputsOf(await build(await recipe('ok.yaml', 'echo hi > /hi'), { cwd: dir }));
    assert.deepEqual(decodeResultMessage(await readFile(join(dir, 'result'), 'utf8')), {
      v: 1,
      outputs: [{ name: 'app', digest: built.get('app')?.digest, ref: 'oci:oci:app', inputs: [{ ref: 'oci:oci:base', role: 'from', digest: built.get('base')?.digest }] }],
    });

    const failed = await build(await recipe('fails.yaml', 'echo broken; exit 3'), { cwd: dir });
    assert.equal(failed.exitCode, 1);
    const result = decodeResultMessage(await readFile(join(dir, 'result'), 'utf8'));
    assert.ok(result !== undefined && 'error' in result);
    assert.equal(result.error.layer, 'app');
    assert.equal(result.error.step, 'run');
    assert.equal(result.error.code, 'RUN_FAILED');
    assert.ok(result.error.lastLines?.includes('broken'));
    // The builder keeps a failed run's rootfs mounted for inspection.
    const kept = errorEvent(failed)?.keptRootfs;
    if (kept !== undefined) await execa('umount', [kept]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
