// Hostile input, files of the build machine: a recipe that reads paths outside its own directory
// (the operator's service account token, a temp file, a symlink leading out, an OCI layout) is
// refused in the operator, at validation, and by `restack build --recipe-dir-only`, before
// anything is built. The CLI without the flag still reads any path, for local use.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { validateRecipe, describeDiagnostics } from '../../src/operator/recipe-source.ts';
import { build, errorEvent, outputsOf, suiteDir } from '../build-engine/helpers.ts';

const token = '/var/run/secrets/kubernetes.io/serviceaccount/token';

describe('the operator refuses host paths outside the recipe at validation, naming the layer and the field', () => {
  test('imports (absolute, climbing out), overlay_dirs, binds, a tar base and oci: layouts are errors at their fields', async () => {
    const recipe = [
      'A:',
      '  from: {type: tar, url: /srv/rootfs.tar.gz}',
      `  imports: ["${token}", "../../etc/passwd", {path: /tmp/restack-secret, hash: ${'a'.repeat(64)}}, "https://example.com/ok.tar", "stacker://B/ok", "files/ok"]`,
      '  overlay_dirs: [{source: /etc}]',
      '  binds: ["/var/run/secrets -> /secrets", {source: ../up}]',
      '  apply: ["oci:/var/lib/images:ssl"]',
      'B:',
      '  from: {type: oci, url: /var/lib/images:base}',
      '  import: /root/.ssh/id_rsa',
      '',
    ].join('\n');
    const loaded = await validateRecipe(recipe, 'team/app.stacker.yaml');
    assert.equal(loaded.ok, false);
    const lines = describeDiagnostics(loaded).split('\n');
    const outside = '; this build reads local files only inside the recipe\'s directory: import by URL (https://...) or from another layer (stacker://LAYER/PATH)';
    const layout = '; this build reads images from registries only: push it and write docker://HOST/REPOSITORY:TAG';
    assert.deepEqual(lines, [
      `team/app.stacker.yaml:2:21: A.from.url: "/srv/rootfs.tar.gz" is an absolute path on the build machine${outside}`,
      `team/app.stacker.yaml:3:13: A.imports.0: "${token}" is an absolute path on the build machine${outside}`,
      `team/app.stacker.yaml:3:68: A.imports.1: "../../etc/passwd" climbs out of the recipe's directory${outside}`,
      `team/app.stacker.yaml:3:89: A.imports.2.path: "/tmp/restack-secret" is an absolute path on the build machine${outside}`,
      `team/app.stacker.yaml:4:19: A.overlay_dirs.0.source: "/etc" is an absolute path on the build machine${outside}`,
      `team/app.stacker.yaml:5:11: A.binds.0: "/var/run/secrets" is an absolute path on the build machine${outside}`,
      `team/app.stacker.yaml:5:44: A.binds.1.source: "../up" climbs out of the recipe's directory${outside}`,
      `team/app.stacker.yaml:6:11: A.apply.0: "oci:/var/lib/images:ssl" is an OCI layout on the build machine${layout}`,
      `team/app.stacker.yaml:8:21: B.from.url: "/var/lib/images:base" is an OCI layout on the build machine${layout}`,
      `team/app.stacker.yaml:9:3: B.import: "/root/.ssh/id_rsa" is an absolute path on the build machine${outside}`,
    ]);
  });

  test('URLs, other layers, registries and paths inside the recipe\'s directory pass', async () => {
    const recipe = 'A:\n  from: {type: docker, url: "docker://registry.example/base:1"}\n  imports: ["https://example.com/x.tar", "stacker://B/x", "files/../files/x", {path: ./y}]\n  overlay_dirs: [{source: overlay}]\nB:\n  from: {type: tar, url: "https://example.com/rootfs.tar"}\n';
    const loaded = await validateRecipe(recipe, 'team/ok.stacker.yaml');
    assert.equal(describeDiagnostics(loaded), '');
    assert.equal(loaded.ok, true);
  });
});

describe('restack build --recipe-dir-only refuses before building; without it the CLI reads any path', () => {
  let dir: string;
  let outside: string;
  before(async () => {
    dir = await suiteDir('restack-host-paths-');
    outside = join(dir, 'outside-the-recipe');
    await writeFile(outside, 'a secret of the build machine\n');
    await mkdir(join(dir, 'recipe'));
    // A file inside the recipe's directory that is a symlink leading out of it.
    await symlink(outside, join(dir, 'recipe', 'innocent'));
  });
  after(async () => {
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const run = async (name: string, imports: string, confined: boolean) => {
    const file = join(dir, 'recipe', `${name}.yaml`);
    await writeFile(file, `A:\n  from: {type: scratch}\n  imports: [${imports}]\n`);
    const oci = join(dir, `${name}-oci`);
    return { oci, run: await build(['-f', file, '--oci-dir', oci, '--roots-dir', join(dir, `${name}-roots`), ...(confined ? ['--recipe-dir-only'] : [])]) };
  };

  test('an absolute path to a temp file outside the recipe: refused with the layer and the field, nothing written', async () => {
    const { oci, run: refused } = await run('absolute', `"${outside}"`, true);
    assert.equal(refused.exitCode, 1);
    const error = errorEvent(refused);
    assert.equal(error?.code, 'HOST_PATH_REFUSED');
    assert.equal(error?.layer, 'A');
    assert.match(error?.message ?? '', new RegExp(`^layer A: A\\.imports\\.0: "${outside}" is an absolute path on the build machine`));
    await assert.rejects(access(oci), 'no output layout');
  });

  test('a symlink inside the recipe\'s directory that leads out: refused, naming where it leads', async () => {
    const { run: refused } = await run('symlink', '"innocent"', true);
    const error = errorEvent(refused);
    assert.equal(error?.code, 'HOST_PATH_REFUSED');
    assert.equal(error?.message, `layer A: A.imports.0 "innocent" leads out of the recipe's directory (it resolves to ${outside})`);
  });

  test('without the flag the same imports build, as they always did', async () => {
    const { run: built } = await run('allowed', `"${outside}", "innocent"`, false);
    assert.ok(outputsOf(built).has('A'));
  });
});
