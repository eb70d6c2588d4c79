import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildPodDefaultsSchema, builderRefusal, buildPodSettings, durationSeconds, serverVersionRefusal, type BuildPolicy } from '../../src/operator/build-policy.ts';
import { buildPodDefaults } from '../../src/cli/commands/operator.ts';
import { UserError } from '../../src/cli/errors.ts';

const policy: BuildPolicy = {
  builderImage: 'registry.example/restack/builder:0.1.0',
  allowedBuilderImages: ['registry.example/restack/builder:0.2.0-rc1'],
  defaults: buildPodDefaultsSchema.parse({
    timeout: '1h',
    resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '4Gi' } },
    storageSizeLimit: '20Gi',
    nodeSelector: { 'restack.dev/build-node': 'true' },
    tolerations: [{ key: 'restack.dev/builds', operator: 'Exists', effect: 'NoSchedule' }],
  }),
};

test('durations: hours, minutes and seconds, never zero or anything else', () => {
  assert.equal(durationSeconds('90s'), 90);
  assert.equal(durationSeconds('45m'), 2700);
  assert.equal(durationSeconds('1h30m'), 5400);
  assert.equal(durationSeconds('2h0m5s'), 7205);
  for (const bad of ['', '0s', '0h0m', '1d', '10', '1.5h', 'm', '1m1h']) assert.equal(durationSeconds(bad), undefined, bad);
});

test("a build pod's settings: the Stackerfile's resources win by name, the operator's node selector wins, tolerations add up", () => {
  assert.deepEqual(buildPodSettings(policy, { storage: 'overlay' }), {
    image: 'registry.example/restack/builder:0.1.0',
    storage: 'overlay',
    resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { memory: '4Gi' } },
    storageSizeLimit: '20Gi',
    activeDeadlineSeconds: 3600,
    nodeSelector: { 'restack.dev/build-node': 'true' },
    tolerations: [{ key: 'restack.dev/builds', operator: 'Exists', effect: 'NoSchedule' }],
  });
  const custom = buildPodSettings(policy, {
    image: 'registry.example/restack/builder:0.2.0-rc1',
    storage: 'auto',
    timeout: '2h30m',
    resources: { requests: { cpu: '2' }, limits: { 'ephemeral-storage': '50Gi' } },
    nodeSelector: { 'restack.dev/build-node': 'false', zone: 'a' },
    tolerations: [{ key: 'gpu', operator: 'Exists' }],
  });
  assert.deepEqual(custom, {
    image: 'registry.example/restack/builder:0.2.0-rc1',
    storage: 'overlay',
    resources: { requests: { cpu: '2', memory: '1Gi' }, limits: { memory: '4Gi', 'ephemeral-storage': '50Gi' } },
    storageSizeLimit: '50Gi',
    activeDeadlineSeconds: 9000,
    nodeSelector: { 'restack.dev/build-node': 'true', zone: 'a' },
    tolerations: [{ key: 'restack.dev/builds', operator: 'Exists', effect: 'NoSchedule' }, { key: 'gpu', operator: 'Exists' }],
  });
  const bare = buildPodSettings({ ...policy, defaults: buildPodDefaultsSchema.parse({}) }, { storage: 'overlay' });
  assert.deepEqual(bare, { image: policy.builderImage, storage: 'overlay', resources: {}, activeDeadlineSeconds: 3600 }, 'defaults: one hour, nothing else imposed');
});

test('refused: a builder image the cluster admin did not allow, btrfs storage, a zero timeout; each names the field', () => {
  assert.equal(builderRefusal(policy, { storage: 'overlay' }), undefined);
  assert.equal(builderRefusal(policy, { storage: 'auto', image: policy.builderImage }), undefined);
  assert.equal(builderRefusal(policy, { storage: 'overlay', image: 'registry.example/restack/builder:0.2.0-rc1' }), undefined);
  const image = builderRefusal(policy, { storage: 'overlay', image: 'docker.io/library/alpine:latest' });
  assert.equal(image?.reason, 'BuilderImageNotAllowed');
  assert.match(image?.message ?? '', /^spec\.builder\.image docker\.io\/library\/alpine:latest is not an allowed builder image \(allowed: registry\.example\/restack\/builder:0\.1\.0, registry\.example\/restack\/builder:0\.2\.0-rc1\)/);
  assert.match(image?.message ?? '', /--allowed-builder-image, chart value allowedBuilderImages/);
  const btrfs = builderRefusal(policy, { storage: 'btrfs' });
  assert.equal(btrfs?.reason, 'StorageNotSupported');
  assert.match(btrfs?.message ?? '', /^spec\.builder\.storage btrfs is not supported in build pods: .* Use overlay \(or auto, which is overlay in a build pod\)$/);
  assert.equal(builderRefusal(policy, { storage: 'overlay', timeout: '0s' })?.reason, 'InvalidTimeout');
});

test('the server version: 1.33 and later run build pods; older ones are refused, saying why', () => {
  assert.equal(serverVersionRefusal({ major: '1', minor: '34', gitVersion: 'v1.34.4' }), undefined);
  assert.equal(serverVersionRefusal({ major: '1', minor: '33+', gitVersion: 'v1.33.2-eks-1' }), undefined);
  assert.equal(serverVersionRefusal({ major: '', minor: '', gitVersion: 'v1.35.0' }), undefined);
  const old = serverVersionRefusal({ major: '1', minor: '32', gitVersion: 'v1.32.9' });
  assert.equal(old?.reason, 'KubernetesTooOld');
  assert.match(old?.message ?? '', /^the API server is v1\.32\.9: build pods need Kubernetes 1\.33 or later, where hostUsers: false/);
  assert.equal(serverVersionRefusal({ major: '', minor: '', gitVersion: 'unknown' })?.reason, 'KubernetesTooOld', 'an unreadable version is not trusted');
});

test('--build-pod-defaults: JSON checked field by field, with the fix', () => {
  assert.deepEqual(buildPodDefaults('{}'), { timeout: '1h', startTimeout: '10m', resources: {}, nodeSelector: {}, tolerations: [] });
  assert.equal(buildPodDefaults('{"timeout":"2h","storageSizeLimit":"30Gi"}').timeout, '2h');
  assert.throws(() => buildPodDefaults('{timeout: 1h}'), (error: unknown) => error instanceof UserError && /^--build-pod-defaults: not JSON/.test(error.message));
  assert.throws(() => buildPodDefaults('{"timeout":"0s"}'), /--build-pod-defaults: timeout: not a duration longer than 0s/);
  assert.throws(() => buildPodDefaults('{"tolerations":[{"effect":"Sometimes"}]}'), /--build-pod-defaults: tolerations\.0\.effect: /);
  assert.throws(() => buildPodDefaults('{"timeuot":"1h"}'), /--build-pod-defaults: \(top\): Unrecognized key: "timeuot"/);
});
