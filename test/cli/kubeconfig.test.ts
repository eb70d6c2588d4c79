/**
 * The cluster commands without a usable kubeconfig: a message naming what was looked at and the
 * fix, exit 1, never a stack trace nor an operator retrying http://localhost:8080 forever.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { restack } from './restack.ts';

let home: string;
before(async () => (home = await mkdtemp(join(tmpdir(), 'restack-kubeconfig-'))));
after(() => rm(home, { recursive: true, force: true }));

// Without the fix the operator retried forever: the test runner's timeout ends it.
const run = (args: string[], kubeconfig: string) => restack(args, { env: { HOME: home, KUBECONFIG: kubeconfig } });

function assertRefused(result: { exitCode?: number; stderr: unknown }, message: RegExp): void {
  assert.equal(result.exitCode, 1, String(result.stderr));
  assert.match(String(result.stderr), message);
  assert.match(String(result.stderr), /hint: /);
  assert.doesNotMatch(String(result.stderr), /internal error|    at /);
}

test('no kubeconfig anywhere: the operator stops at once, naming where it looked', { timeout: 120_000 }, async () => {
  assertRefused(await run(['operator', '--executor', 'local'], ''), new RegExp(`no kubeconfig: KUBECONFIG is not set, ${join(home, '.kube', 'config')} does not exist`));
});

test('a KUBECONFIG file that is missing or not YAML is named, for the operator and for which --cluster', async () => {
  const missing = join(home, 'missing.yaml');
  assertRefused(await run(['operator', '--executor', 'local'], missing), new RegExp(`cannot load the kubeconfig from KUBECONFIG=${missing}: ENOENT`));
  const broken = join(home, 'broken.yaml');
  await writeFile(broken, 'clusters: [\n');
  assertRefused(await run(['which', '--cluster', 'docker://127.0.0.1:1/team/python3:latest'], broken), new RegExp(`cannot load the kubeconfig from KUBECONFIG=${broken}`));
});

test('a kubeconfig without a current context says so', async () => {
  const empty = join(home, 'empty.yaml');
  await writeFile(empty, 'apiVersion: v1\nkind: Config\n');
  assertRefused(await run(['operator', '--executor', 'local'], empty), /has no current context/);
});
