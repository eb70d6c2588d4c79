import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Stackerfile } from '../../src/operator/kube.ts';
import { swapFailure } from '../../src/operator/swap-runner.ts';
import { SigningError } from '../../src/sign/errors.ts';

const stackerfile = {
  apiVersion: 'restack.dev/v1alpha1',
  kind: 'Stackerfile',
  metadata: { name: 'app', namespace: 'team' },
  spec: { output: { registry: 'registry.example/team', tags: ['latest'], insecure: false, signing: { keySecretRef: { name: 'signing' } } } },
} as unknown as Stackerfile;

test('a swap whose signing key is unusable fails its ImageBuild with the reason and the fix, instead of being retried', () => {
  const missing = new SigningError('KEY_INVALID', 'spec.output.signing.keySecretRef: Secret team/signing does not exist', 'create it with cosign generate-key-pair k8s://team/signing, or fix the name');
  assert.equal(swapFailure(missing, stackerfile), 'spec.output.signing.keySecretRef: Secret team/signing does not exist; create it with cosign generate-key-pair k8s://team/signing, or fix the name');
  const password = new SigningError('KEY_PASSWORD', 'Secret team/signing (spec.output.signing.keySecretRef): the password does not decrypt the key', 'set COSIGN_PASSWORD');
  assert.match(swapFailure(password, stackerfile) ?? '', /the password does not decrypt the key; set COSIGN_PASSWORD/);
  assert.equal(swapFailure(new Error('a bug'), stackerfile), undefined, 'anything else is thrown, as before');
});
