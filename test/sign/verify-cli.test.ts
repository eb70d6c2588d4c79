import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { restack } from '../cli/restack.ts';

test('verify and build --sign-key refuse what they cannot do, naming the input and the fix, before reading any image', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'restack-verify-'));
  const keys = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  await writeFile(join(dir, 'cosign.pub'), keys.publicKey.export({ format: 'pem', type: 'spki' }));
  await writeFile(join(dir, 'cosign.key'), keys.privateKey.export({ format: 'pem', type: 'pkcs8' }));

  const layout = await restack(['verify', `oci:${join(dir, 'layout')}:app`, '--key', join(dir, 'cosign.pub')]);
  assert.equal(layout.exitCode, 1);
  assert.match(layout.stderr, /signatures are stored in a registry, and this is an OCI layout \[REGISTRY_REQUIRED\]\n {2}hint: publish to a registry/);

  const privateAsPublic = await restack(['verify', 'docker://127.0.0.1:9/team/app:latest', '--key', join(dir, 'cosign.key')]);
  assert.equal(privateAsPublic.exitCode, 1);
  assert.match(privateAsPublic.stderr, /cosign\.key holds a "PRIVATE KEY" PEM block, not a public key \[KEY_INVALID\]/);

  await writeFile(join(dir, 'stacker.yaml'), 'app:\n  from: {type: scratch}\n');
  const signWithoutPush = await restack(['build', '-f', join(dir, 'stacker.yaml'), '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots'), '--sign-key', join(dir, 'cosign.key')]);
  assert.equal(signWithoutPush.exitCode, 1);
  assert.match(signWithoutPush.stderr, /--sign-key signs what is pushed, and there is no --push\n {2}hint: add --push docker:\/\/host\[:port\]\/prefix/);
});
