/**
 * What a person sees when a build cannot go on: a failing run (exit code, last lines, kept
 * rootfs), a missing import, a hash mismatch, an unknown built tag; and doctor's verdict.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { isMountPoint, unmount } from '../../src/build/storage/mounts.ts';
import { restack } from '../cli/restack.ts';
import { build, errorEvent, suiteDir, writeBusyboxTarball } from './helpers.ts';

describe('restack build: failures say what to fix', () => {
  let dir: string;
  const base = 'base:\n  from: {type: tar, url: rootfs.tar.gz}\n  build_only: true\n';
  const buildRecipe = async (name: string, layer: string) => {
    await writeFile(join(dir, name), `${base}${layer}`);
    return build(['-f', join(dir, name), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots')]);
  };

  before(async () => {
    dir = await suiteDir('restack-failures-');
    await writeBusyboxTarball(join(dir, 'rootfs.tar.gz'));
    await writeFile(join(dir, 'note.txt'), 'a note\n');
  });
  after(() => rm(dir, { recursive: true, force: true }));

  test('a failing run: non-zero exit, its exit code and last lines, the kept rootfs', async () => {
    const run = await buildRecipe('bad.yaml', 'bad:\n  from: {type: built, tag: base}\n  run:\n    - echo one\n    - echo two >&2\n    - exit 7\n    - echo never\n');
    assert.equal(run.exitCode, 1);
    const error = errorEvent(run);
    assert.equal(error?.code, 'RUN_FAILED');
    assert.equal(error?.layer, 'bad');
    assert.equal(error?.exitCode, 7);
    assert.deepEqual(error?.lastLines, ['one', 'two']);
    const kept = error?.keptRootfs as string;
    assert.ok((await stat(join(kept, 'bin', 'busybox'))).isFile(), 'the kept rootfs is the one the run failed in');
    assert.match(run.stderr, /error: layer bad: run failed with exit code 7; last 2 lines of output:\n {2}one\n {2}two\n/);
    assert.ok(run.stderr.includes(`kept rootfs: ${kept}`));
    if (await isMountPoint(kept)) await unmount(kept);
  });

  test('a missing import names the layer, the import and the fix', async () => {
    const run = await buildRecipe('missing.yaml', 'app:\n  from: {type: built, tag: base}\n  imports: [nothere.txt]\n  run: "true"\n');
    assert.equal(run.exitCode, 1);
    const error = errorEvent(run);
    assert.equal(error?.code, 'IMPORT_MISSING');
    assert.match(error?.message ?? '', /^layer app: import "nothere\.txt" \(app\.imports\.0\): it does not exist \(.*\/nothere\.txt\)$/);
    assert.match(error?.hint ?? '', /create it, or fix the path in app\.imports\.0/);
  });

  test('a hash mismatch gives the actual hash to put in the recipe', async () => {
    const run = await buildRecipe('hash.yaml', `app:\n  from: {type: built, tag: base}\n  imports:\n    - path: note.txt\n      hash: "${'0'.repeat(64)}"\n  run: "true"\n`);
    assert.equal(run.exitCode, 1);
    const error = errorEvent(run);
    assert.equal(error?.code, 'IMPORT_HASH_MISMATCH');
    const actual = createHash('sha256').update('a note\n').digest('hex');
    assert.equal(error?.message, `layer app: import "note.txt" (app.imports.0): its sha256 is ${actual}, but the recipe expects ${'0'.repeat(64)}`);
    assert.match(error?.hint ?? '', new RegExp(`set hash: ${actual} in app\\.imports\\.0`));
  });

  test('an unknown built tag is a validation error: nothing is built', async () => {
    const run = await buildRecipe('unknown.yaml', 'app:\n  from: {type: built, tag: nope}\n');
    assert.equal(run.exitCode, 1);
    assert.match(run.stderr, /unknown\.yaml:\d+:\d+: app\.from\.tag: built base "nope" names no layer/);
    assert.equal(errorEvent(run)?.code, 'RECIPE_INVALID');
    assert.equal(run.events.some((event) => event.event === 'layer-start'), false);
  });

  test('doctor passes here and says what each check is; setup-btrfs refuses a bad size', async () => {
    const doctor = await restack(['doctor', '--json']);
    const report = JSON.parse(String(doctor.stdout)) as { ok: boolean; checks: { check: string; ok: boolean; required: boolean }[] };
    assert.equal(doctor.exitCode, report.ok ? 0 : 1);
    assert.ok(report.checks.some((check) => check.check === 'lxc-execute'));
    const text = await restack(['doctor']);
    assert.match(String(text.stdout), /^(ok {2}|FAIL|warn) {2}lxc-execute: /m);
    const bad = await restack(['setup-btrfs', '--size', 'lots', join(dir, 'btrfs')]);
    assert.equal(bad.exitCode, 1);
    assert.match(String(bad.stderr), /btrfs size "lots" is not a size/);
  });
});
