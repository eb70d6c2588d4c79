import assert from 'node:assert/strict';
import { chmod, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { recordKeyFrom } from '../../src/cli/commands/record-key-options.ts';
import { restack } from '../cli/restack.ts';
import { defaultRecordKeyFile, readOrCreateRecordKeyFile, readRecordKeyFile } from '../../src/sign/record-key-file.ts';

const dir = await mkdtemp(join(tmpdir(), 'restack-record-key-'));
after(() => rm(dir, { recursive: true, force: true }));

test('a missing key file is created once: 32 random bytes, mode 0600 in a 0700 directory, and read back the same', async () => {
  const file = join(dir, 'created', 'restack', 'layer-record.key');
  const [first, second] = await Promise.all([readOrCreateRecordKeyFile(file), readOrCreateRecordKeyFile(file)]);
  assert.equal(first.length, 32);
  assert.deepEqual(second, first, 'two builds starting together share one key');
  assert.deepEqual(await readOrCreateRecordKeyFile(file), first);
  assert.equal((await stat(file)).mode & 0o777, 0o600);
  assert.equal((await stat(join(dir, 'created', 'restack'))).mode & 0o777, 0o700);
});

test('a key file others may read, or of the wrong size, is refused naming the file and the fix', async () => {
  const file = join(dir, 'shared.key');
  await writeFile(file, Buffer.alloc(32, 7), { mode: 0o644 });
  await chmod(file, 0o644);
  await assert.rejects(readRecordKeyFile(file), (error: Error & { hint?: string }) => {
    assert.match(error.message, new RegExp(`${file} is readable by every user \\(mode 644\\)`));
    assert.match(error.hint ?? '', new RegExp(`chmod 600 ${file}`));
    return true;
  });
  await chmod(file, 0o640);
  await assert.rejects(readRecordKeyFile(file), /readable by its group \(mode 640\)/);
  assert.deepEqual(await readRecordKeyFile(file, { groupReadable: true }), Buffer.alloc(32, 7), "the operator's Secret, mounted for its fsGroup");
  await chmod(file, 0o604);
  await assert.rejects(readRecordKeyFile(file, { groupReadable: true }), /readable by every user/);
  const short = join(dir, 'short.key');
  await writeFile(short, 'secret\n', { mode: 0o600 });
  await assert.rejects(readRecordKeyFile(short), (error: Error & { hint?: string }) => {
    assert.match(error.message, new RegExp(`${short} holds 7 bytes, not 32 random bytes`));
    assert.match(error.hint ?? '', /head -c 32 \/dev\/urandom/);
    return true;
  });
  await assert.rejects(readRecordKeyFile(join(dir, 'absent.key')), /absent\.key cannot be read/);
});

test('which key a command uses: --no-layer-record-key, the flag, the variable, the default file', async () => {
  const config = join(dir, 'config');
  const environment = { XDG_CONFIG_HOME: config };
  const defaultFile = defaultRecordKeyFile(environment);
  assert.equal(defaultFile, join(config, 'restack', 'layer-record.key'));
  assert.equal(await recordKeyFrom({}, environment, false), undefined, 'a swap without the default file reads the layers');
  assert.equal(await recordKeyFrom({ layerRecordKey: false }, environment, true), undefined);
  const created = await recordKeyFrom({}, environment, true);
  assert.deepEqual(created, await readFile(defaultFile), 'a build creates the default file');
  assert.deepEqual(await recordKeyFrom({}, environment, false), created, 'and a swap then uses it');
  const named = join(dir, 'named.key');
  await writeFile(named, Buffer.alloc(32, 1), { mode: 0o600 });
  assert.deepEqual(await recordKeyFrom({}, { ...environment, RESTACK_LAYER_RECORD_KEY_FILE: named }, false), Buffer.alloc(32, 1));
  assert.deepEqual(await recordKeyFrom({ layerRecordKey: defaultFile }, { RESTACK_LAYER_RECORD_KEY_FILE: named }, false), created, 'the flag before the variable');
  await assert.rejects(recordKeyFrom({ layerRecordKey: join(dir, 'typo.key') }, environment, false), /typo\.key cannot be read/, 'a swap does not create a file it was told to use');
});

test('a build where the default key cannot be made (no writable home) warns and records nothing; a named file that cannot be made fails it', async () => {
  const notADirectory = join(dir, 'plain-file');
  await writeFile(notADirectory, '');
  const warnings: string[] = [];
  assert.equal(await recordKeyFrom({}, { XDG_CONFIG_HOME: notADirectory }, true, (message) => warnings.push(message)), undefined);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0] ?? '', new RegExp(`${notADirectory}/restack/layer-record.key cannot be created .*: no layer change records are written`));
  await assert.rejects(recordKeyFrom({ layerRecordKey: join(notADirectory, 'layer-record.key') }, {}, true), /cannot be created/);
});

test("the operator refuses a master key others may read before it looks for a cluster, and accepts its group's", async () => {
  const master = join(dir, 'master.key');
  await writeFile(master, Buffer.alloc(32, 3), { mode: 0o644 });
  await chmod(master, 0o644);
  const run = (kubeconfig: string) => restack(['operator', '--executor', 'local', '--layer-record-key-file', master], { env: { HOME: dir, KUBECONFIG: kubeconfig } });
  const refused = await run(join(dir, 'no-kubeconfig.yaml'));
  assert.equal(refused.exitCode, 1);
  assert.match(String(refused.stderr), new RegExp(`layer record key ${master} is readable by every user \\(mode 644\\)`));
  assert.match(String(refused.stderr), new RegExp(`hint: chmod 640 ${master}`));
  await chmod(master, 0o440);
  const accepted = await run(join(dir, 'no-kubeconfig.yaml'));
  assert.match(String(accepted.stderr), /cannot load the kubeconfig/, 'the key passed: the kubeconfig is next');
});
