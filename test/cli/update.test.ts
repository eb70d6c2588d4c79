/**
 * `restack update` on the seeds' example, built for real and published to docker-registry: the
 * first run builds, a bumped python3 is swapped into A without running A again, a new base
 * rebuilds everything, an overlapping python3 rebuilds A naming the path, and a run with nothing
 * new does nothing.
 */
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, test } from 'node:test';
import type { UpdateEvent, UpdateResult } from '../../src/engine/update.ts';
import { readImage } from '../../src/oci/open.ts';
import type { Descriptor } from '../../src/oci/types.ts';
import { makeLayer, validateImage } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered } from '../swap/seeds.ts';
import { pushBusyboxBase, suiteDir } from '../build-engine/helpers.ts';
import { execa } from 'execa';
import { main, restack } from './restack.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

interface UpdateRun {
  exitCode: number;
  events: UpdateEvent[];
  stderr: string;
}

/** The results by image; fails with the update's own account when it did not finish. */
function resultsOf(run: UpdateRun): Map<string, UpdateResult> {
  const done = run.events.find((event) => event.event === 'update-done');
  if (run.exitCode !== 0 || done === undefined) throw new Error(`update failed (exit ${run.exitCode}):\n${run.stderr}`);
  return new Map(done.images.map((result) => [result.image, result]));
}

/** Layers whose build started a container (a `run` step). */
const containersRan = (run: UpdateRun) => run.events.flatMap((event) => (event.event === 'step' && event.step === 'run' ? [event.layer] : []));

describe('restack update: the seeds example against docker-registry', { skip }, () => {
  const running = registry as RunningRegistry;
  const prefix = () => `docker://${running.host}/seeds`;
  let dir: string;
  after(async () => {
    await running.stop();
    await rm(dir, { recursive: true, force: true });
  });

  const writeRecipe = (python3Run: string) => {
    const from = `{type: docker, url: "${prefix()}/base:latest"}`;
    return writeFile(
      join(dir, 'stacker.yaml'),
      [
        `ssl:     {from: ${from}, run: [mkdir -p /usr/lib, echo openssl 3.0 > /usr/lib/ssl.txt]}`,
        `python3: {from: ${from}, run: [${python3Run}]}`,
        'A:',
        `  from: ${from}`,
        `  apply: ["${prefix()}/ssl:latest", "${prefix()}/python3:latest"]`,
        '  run: |',
        '    mkdir -p /srv',
        '    cat /usr/lib/ssl.txt /usr/bin/python3 > /srv/A',
        '',
      ].join('\n'),
    );
  };
  const update = async (...more: string[]): Promise<UpdateRun> => {
    const args = ['update', '--json', '-f', join(dir, 'stacker.yaml'), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots'), '--push', prefix(), ...more];
    const result = await restack(args);
    const events = String(result.stdout)
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as UpdateEvent);
    return { exitCode: result.exitCode ?? 1, events, stderr: String(result.stderr) };
  };
  const layers = async (name: string) => (await readImage(open(`${prefix()}/${name}:latest`).store, `seeds/${name}`, 'latest')).manifest.layers.map((layer) => layer.digest);
  const actions = (results: Map<string, UpdateResult>) => [...results.values()].map((result) => [result.image, result.action, result.reason ?? '']);

  before(async () => {
    dir = await suiteDir('restack-update-');
    await pushBusyboxBase(`${prefix()}/base:latest`);
    await writeRecipe('mkdir -p /usr/bin, echo python 3.11 > /usr/bin/python3');
  });

  test('never published: every image is built (Initial), then a second update does nothing', async () => {
    const first = resultsOf(await update());
    assert.deepEqual(actions(first), [
      ['ssl', 'rebuilt', 'Initial'],
      ['python3', 'rebuilt', 'Initial'],
      ['A', 'rebuilt', 'Initial'],
    ]);
    assert.equal((await layers('a')).length, 4);
    const second = await update();
    assert.deepEqual(actions(resultsOf(second)), [
      ['ssl', 'nothing', ''],
      ['python3', 'nothing', ''],
      ['A', 'nothing', ''],
    ]);
    assert.deepEqual(containersRan(second), []);
  });

  test('python3 bumped in the recipe: python3 rebuilt (RecipeChange), A swapped, A not run again; with --sign-key both are signed', async () => {
    const before = await layers('a');
    await writeRecipe('mkdir -p /usr/bin, echo python 3.12 > /usr/bin/python3');
    const keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
    await writeFile(join(dir, 'sign.pem'), keys.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    await writeFile(join(dir, 'sign.pub'), keys.publicKey.export({ format: 'pem', type: 'spki' }));
    const run = await update('--sign-key', join(dir, 'sign.pem'));
    const results = resultsOf(run);
    assert.deepEqual(actions(results), [
      ['ssl', 'nothing', ''],
      ['python3', 'rebuilt', 'RecipeChange'],
      ['A', 'swapped', ''],
    ]);
    assert.deepEqual(containersRan(run), ['python3']);
    const python3 = await layers('python3');
    const after = await layers('a');
    assert.deepEqual([after[0], after[1], after[2], after[3]], [before[0], before[1], python3[1], before[3]], "only python3's slice changed; A's own layer is the same bytes");
    assert.equal(results.get('A')?.after, (await open(`${prefix()}/a:latest`).store.resolve('seeds/a', 'latest')).digest);
    await validateImage(open(`${prefix()}/a:latest`).store, 'seeds/a', 'latest');
    const swapped = await restack(['verify', `${prefix()}/a:latest`, '--key', join(dir, 'sign.pub')]);
    assert.equal(swapped.exitCode, 0, swapped.stderr);
    assert.match(swapped.stdout, /provenance https:\/\/restack\.dev\/swap\/v1/);
    const rebuilt = await restack(['verify', `${prefix()}/python3:latest`, '--key', join(dir, 'sign.pub')]);
    assert.equal(rebuilt.exitCode, 0, rebuilt.stderr);
    assert.match(rebuilt.stdout, /provenance https:\/\/restack\.dev\/build\/v1/);
    assert.deepEqual(actions(resultsOf(await update())).map(([, action]) => action), ['nothing', 'nothing', 'nothing']);
  });

  test('a new base: ssl, python3 and A are rebuilt with reason BaseUpdate', async () => {
    // the same busybox layer as published, plus one more file
    const base = open(`${prefix()}/base:latest`);
    const published = await readImage(base.store, base.repository, 'latest');
    const busybox = published.manifest.layers[0] as Descriptor;
    const busyboxLayer = { bytes: await base.store.readBlob(base.repository, busybox), descriptor: busybox, diffId: published.config.rootfs.diff_ids[0] as string };
    await pushLayered(prefix(), 'base', [busyboxLayer, await makeLayer({ 'etc/motd': 'a new base\n' })]);
    const run = await update();
    assert.deepEqual(actions(resultsOf(run)), [
      ['ssl', 'rebuilt', 'BaseUpdate'],
      ['python3', 'rebuilt', 'BaseUpdate'],
      ['A', 'rebuilt', 'BaseUpdate'],
    ]);
    assert.equal((await layers('a')).length, 5);
  });

  test("python3+1 writes /srv/A, which A's own layer wrote: A is rebuilt, the reason names the path", async () => {
    await writeRecipe('mkdir -p /usr/bin /srv, echo python 3.13 > /usr/bin/python3, echo from python > /srv/A');
    const run = await update();
    const results = resultsOf(run);
    assert.deepEqual(actions(results), [
      ['ssl', 'nothing', ''],
      ['python3', 'rebuilt', 'RecipeChange'],
      ['A', 'rebuilt', 'ApplyUpdate'],
    ]);
    assert.match(results.get('A')?.message ?? '', /refused \(Overlap\).*\/srv\/A/);
    assert.deepEqual(containersRan(run), ['python3', 'A']);
  });

  test('--push oci:DIR: the images live in a layout per image; a second run does nothing', async () => {
    const recipe = join(dir, 'tool.yaml');
    await writeFile(recipe, `tool: {from: {type: docker, url: "${prefix()}/base:latest"}, run: [echo tool > /tool]}\n`);
    const args = ['update', '--json', '-f', recipe, '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots'), '--push', `oci:${join(dir, 'published')}`];
    const parse = (stdout: unknown): UpdateRun['events'] => String(stdout).split('\n').filter((line) => line.trim() !== '').map((line) => JSON.parse(line) as UpdateEvent);
    const first = await restack(args);
    assert.deepEqual(actions(resultsOf({ exitCode: first.exitCode ?? 1, events: parse(first.stdout), stderr: String(first.stderr) })), [['tool', 'rebuilt', 'Initial']]);
    await validateImage(open(`oci:${join(dir, 'published', 'tool')}:latest`).store, '', 'latest');
    const second = await restack(args);
    assert.deepEqual(actions(resultsOf({ exitCode: second.exitCode ?? 1, events: parse(second.stdout), stderr: String(second.stderr) })), [['tool', 'nothing', '']]);
  });

  test('--watch updates on the schedule until Ctrl-C, then exits 0', async () => {
    const child = execa(process.execPath, [main, 'update', '--json', '--watch', '--schedule', '* * * * * *', '-f', join(dir, 'stacker.yaml'), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots'), '--push', prefix()], { reject: false });
    let runs = 0;
    // read stdout to the end (closing it early would break the child's writes)
    await new Promise<void>((twoRuns) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        if ((JSON.parse(line) as UpdateEvent).event === 'update-done' && ++runs === 2) twoRuns();
      });
    });
    child.kill('SIGINT');
    const result = await child;
    assert.equal(runs, 2);
    assert.equal(result.exitCode, 0, String(result.stderr));
    assert.match(String(result.stderr), /stopping/);
  });
});
