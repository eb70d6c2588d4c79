import assert from 'node:assert/strict';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { signImage } from '../../src/engine/signing.ts';
import { sha256Digest } from '../../src/oci/digest.ts';
import { inspectImage } from '../../src/engine/inspect.ts';
import { readStoredImage } from '../../src/engine/images.ts';
import { attachedLayers } from '../../src/sign/attach.ts';
import { attachmentImage, attachmentTag } from '../../src/sign/attachments.ts';
import { SigningError } from '../../src/sign/errors.ts';
import { fileSigner } from '../../src/sign/key-file.ts';
import { parsePrivateKey } from '../../src/sign/keys.ts';
import { parseEnvelope, parseStatement } from '../../src/sign/payloads.ts';
import { slsaProvenanceType, type SlsaPredicate } from '../../src/sign/provenance.ts';
import { restack } from '../cli/restack.ts';
import { installCosign, offlineRegistryFlags, type Cosign } from '../services/cosign.ts';
import { startFaultyProxy } from '../services/faulty-proxy.ts';
import { makeLayer } from '../services/images.ts';
import { startOrSkip, startRegistry, type RunningRegistry } from '../services/registry.ts';
import { open, pushLayered, pushSeeds, type SeedImages } from '../swap/seeds.ts';

const started = await startOrSkip(async () => ({ registry: await startRegistry(), cosign: await installCosign() }));

const password = 'correct horse battery staple';

/** The statement of the one attestation under the image's .att tag. */
async function attestedPredicate(ref: string, digest: string): Promise<{ predicateType: string; predicate: SlsaPredicate }> {
  const target = open(ref);
  const [layer] = await attachedLayers({ store: target.store, repository: target.repository, name: '' }, digest, 'att');
  assert.ok(layer !== undefined, `${ref} has an attestation`);
  const envelope = parseEnvelope(await target.store.readBlob(target.repository, layer));
  const statement = parseStatement(envelope?.payload ?? new Uint8Array());
  assert.ok(statement !== undefined);
  return { predicateType: statement.predicateType, predicate: statement.predicate as SlsaPredicate };
}

describe('signing with cosign keys, verified by the real cosign', { skip: started.skip }, () => {
  const { registry, cosign } = started.service as { registry: RunningRegistry; cosign: Cosign };
  after(() => registry.stop());
  const prefix = () => `docker://${registry.host}/signed`;
  let keys: string;
  let seeds: SeedImages;
  const key = () => join(keys, 'cosign.key');
  const pub = () => join(keys, 'cosign.pub');
  const signed = (args: string[]) => restack([...args, '--sign-key', key()], { env: { COSIGN_PASSWORD: password } });

  before(async () => {
    keys = await cosign.generateKeyPair(password);
    seeds = await pushSeeds(prefix());
  });

  test('a key from cosign generate-key-pair is read with its password, and refused with another', async () => {
    const text = await readFile(key(), 'utf8');
    assert.match(text, /^-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----/);
    const privateKey = parsePrivateKey(text, 'cosign.key', password);
    assert.equal(privateKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    assert.throws(() => parsePrivateKey(text, 'cosign.key', 'wrong'), (error: unknown) => error instanceof SigningError && error.code === 'KEY_PASSWORD' && /COSIGN_PASSWORD/.test(error.hint ?? ''));
    const empty = await cosign.generateKeyPair('');
    assert.equal(parsePrivateKey(await readFile(join(empty, 'cosign.key'), 'utf8'), 'cosign.key', undefined).asymmetricKeyType, 'ec');
  });

  test('a swap signs and attests the new digest before the tag moves; cosign verify and verify-attestation accept both', async () => {
    const python3v2 = await makeLayer({ 'usr/bin/python3': 'python 3.12\n' });
    const python3After = await pushLayered(prefix(), 'python3', [seeds.base, python3v2]);
    const result = await signed(['swap', `${prefix()}/a:latest`, '--dependency', `${prefix()}/python3:latest`, '--json']);
    assert.equal(result.exitCode, 0, result.stderr);
    const outcome = JSON.parse(result.stdout) as { status: string; before: string; after: string; signing: { signature: string; attestation: string; tags: string[] } };
    assert.equal(outcome.status, 'swapped');
    assert.deepEqual(outcome.signing, { signature: 'written', attestation: 'written', tags: [attachmentTag(outcome.after, 'sig'), attachmentTag(outcome.after, 'att')] });
    assert.equal((await inspectImage(open(`${prefix()}/a:latest`))).digest, outcome.after);

    const pinned = `${registry.host}/signed/a@${outcome.after}`;
    const verified = await cosign.verify(pub(), pinned);
    assert.equal(verified.exitCode, 0, verified.stderr);
    assert.match(verified.stdout, new RegExp(`"docker-manifest-digest":"${outcome.after}"`));
    const attested = await cosign.verifyAttestation(pub(), `${registry.host}/signed/a:latest`);
    assert.equal(attested.exitCode, 0, attested.stderr);

    const { predicateType, predicate } = await attestedPredicate(`${prefix()}/a:latest`, outcome.after);
    assert.equal(predicateType, slsaProvenanceType);
    assert.equal(predicate.buildType, 'https://restack.dev/swap/v1');
    assert.match(predicate.builder.id, /^pkg:npm\/restack@/);
    assert.equal(predicate.invocation.parameters.image, `${prefix()}/a@${outcome.before}`);
    const pythonBefore = (await readStoredImage(open(`${prefix()}/a@${outcome.before}`))).platforms[0]?.image.manifest.annotations?.['restack.dev/provenance'] ?? '';
    assert.deepEqual(predicate.invocation.parameters.changes, [
      { dependency: `${prefix()}/python3:latest`, from: (JSON.parse(pythonBefore) as { applied: { digest: string }[] }).applied[1]?.digest, to: python3After, platform: 'linux/amd64' },
    ]);
    const materials = predicate.materials.map((material) => `${material.uri} ${material.digest['sha256']?.slice(0, 12)}`);
    assert.ok(materials.includes(`${prefix()}/python3:latest ${python3After.slice(7, 19)}`), materials.join('\n'));
    assert.ok(materials.includes(`${prefix()}/a ${outcome.before.slice(7, 19)}`), materials.join('\n'));

    const mine = await restack(['verify', `${prefix()}/a:latest`, '--key', pub()]);
    assert.equal(mine.exitCode, 0, mine.stderr);
    assert.match(mine.stdout, /1 signature\(s\) and 1 SLSA provenance attestation\(s\)/);
    assert.match(mine.stdout, new RegExp(`python3:latest \\(linux/amd64\\): sha256:[0-9a-f]{12} -> ${python3After.slice(0, 19)}`));
  });

  test('build --push --sign-key signs each pushed image; its provenance names the builder, the recipe digest and the base', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'restack-sign-build-'));
    const recipe = join(dir, 'stacker.yaml');
    await writeFile(recipe, `app:\n  from:\n    type: docker\n    url: ${prefix()}/base:latest\n  labels:\n    team: signing\n`);
    const run = await signed(['build', '-f', recipe, '--oci-dir', join(dir, 'oci'), '--roots-dir', join(dir, 'roots'), '--push', prefix(), '--builder-id', 'docker://example.com/restack/builder:1', '--json']);
    assert.equal(run.exitCode, 0, run.stderr);
    const app = `${registry.host}/signed/app:latest`;
    assert.equal((await cosign.verify(pub(), app)).exitCode, 0);
    assert.equal((await cosign.verifyAttestation(pub(), app)).exitCode, 0);
    const { top, platforms } = await readStoredImage(open(`docker://${app}`));
    const { predicate } = await attestedPredicate(`docker://${app}`, top.descriptor.digest);
    const record = platforms[0]?.image.manifest.annotations?.['restack.dev/recipe'] ?? '';
    assert.deepEqual(predicate.builder, { id: 'docker://example.com/restack/builder:1' });
    assert.equal(predicate.buildType, 'https://restack.dev/build/v1');
    assert.deepEqual(predicate.invocation.configSource, { uri: `${prefix()}/app`, digest: { sha256: sha256Digest(new TextEncoder().encode(record)).slice(7) }, entryPoint: 'app' });
    assert.deepEqual(predicate.materials, [{ uri: `${prefix()}/base:latest`, digest: { sha256: (await inspectImage(open(`${prefix()}/base:latest`))).digest.slice(7) } }]);
    const verified = await restack(['verify', `docker://${app}`, '--key', pub()]);
    assert.equal(verified.exitCode, 0, verified.stderr);
    assert.match(verified.stdout, /recipe {3}layer app of /);
  });

  test('signing a digest again adds nothing: the signature and attestation by the key are recognised', async () => {
    const target = open(`${prefix()}/a:latest`);
    const { top, platforms } = await readStoredImage(target);
    const signing = { signer: await fileSigner(key(), { COSIGN_PASSWORD: password }), builderId: 'test', environment: {} };
    const again = await signImage(signing, target, top.descriptor, platforms.map((platform) => platform.image), new Date());
    assert.equal(again.signature, 'present');
    assert.equal(again.attestation, 'present');
    const attach = { store: target.store, repository: target.repository, name: '' };
    assert.equal((await attachedLayers(attach, top.descriptor.digest, 'sig')).length, 1);
    assert.equal((await attachedLayers(attach, top.descriptor.digest, 'att')).length, 1);
  });

  test('an image signed by cosign sign and cosign attest is verified by restack verify', async () => {
    const ref = `${registry.host}/signed/base:latest`;
    const predicate = join(keys, 'predicate.json');
    await writeFile(predicate, JSON.stringify({ builder: { id: 'https://example.com/ci' }, buildType: 'https://example.com/build', materials: [] }));
    const common = ['--key', key(), '--tlog-upload=false', '--use-signing-config=false', '--new-bundle-format=false', '-y', ...offlineRegistryFlags];
    const env = { COSIGN_PASSWORD: password };
    const sign = await cosign.run(['sign', ...common, `${registry.host}/signed/base@${(await inspectImage(open(`docker://${ref}`))).digest}`], { env });
    assert.equal(sign.exitCode, 0, sign.stderr);
    const attest = await cosign.run(['attest', ...common, '--type', 'slsaprovenance', '--predicate', predicate, `docker://${ref}`.slice('docker://'.length)], { env });
    assert.equal(attest.exitCode, 0, attest.stderr);
    const result = await restack(['verify', `docker://${ref}`, '--key', pub()]);
    assert.equal(result.exitCode, 0, result.stderr);
    assert.match(result.stdout, /builder {2}https:\/\/example\.com\/ci/);
  });

  test('a tampered signature is refused by cosign and by restack verify; another key is refused too', async () => {
    const ref = `${prefix()}/a:latest`;
    const target = open(ref);
    const digest = (await inspectImage(target)).digest;
    const attach = { store: target.store, repository: target.repository, name: '' };
    const [layer] = await attachedLayers(attach, digest, 'sig');
    assert.ok(layer !== undefined);
    const signature = Buffer.from(layer.annotations?.['dev.cosignproject.cosign/signature'] ?? '', 'base64');
    signature[signature.length - 1] = (signature[signature.length - 1] as number) ^ 1;
    const tampered = attachmentImage([{ ...layer, annotations: { 'dev.cosignproject.cosign/signature': signature.toString('base64') } }]);
    await target.store.putBlob(target.repository, tampered.configDescriptor, tampered.configBytes);
    const written = await target.store.putManifest(target.repository, tampered.manifestBytes, tampered.manifestDescriptor.mediaType);
    await target.store.tag(target.repository, attachmentTag(digest, 'sig'), written);

    const refused = await cosign.verify(pub(), `${registry.host}/signed/a@${digest}`);
    assert.notEqual(refused.exitCode, 0, 'cosign refuses the tampered signature');
    const mine = await restack(['verify', ref, '--key', pub()]);
    assert.equal(mine.exitCode, 1);
    assert.match(mine.stderr, /none of the 1 signature\(s\) under sha256-[0-9a-f]{64}\.sig verifies with the key \[SIGNATURE_INVALID\]/);

    const other = await cosign.generateKeyPair('other');
    const otherKey = await restack(['verify', `${prefix()}/a:latest`, '--key', join(other, 'cosign.pub')]);
    assert.equal(otherKey.exitCode, 1);
    assert.match(otherKey.stderr, /SIGNATURE_INVALID/);
    const unsigned = await restack(['verify', `${prefix()}/ssl:latest`, '--key', pub()]);
    assert.equal(unsigned.exitCode, 1);
    assert.match(unsigned.stderr, /has no signature \(no sha256-[0-9a-f]{64}\.sig tag\) \[SIGNATURE_MISSING\]/);
  });

  test('when the attestation cannot be written the swap fails and the tag stays on the old image', async (t) => {
    const proxy = await startFaultyProxy(`http://${registry.host}`);
    t.after(() => proxy.stop());
    const viaProxy = `docker://${proxy.host}/signed`;
    const before = (await inspectImage(open(`${viaProxy}/a:latest`))).digest;
    await pushLayered(viaProxy, 'python3', [seeds.base, await makeLayer({ 'usr/bin/python3': 'python 3.13\n' })]);
    proxy.inject({ method: 'PUT', path: /\/manifests\/sha256-[0-9a-f]{64}\.att$/, fault: { kind: 'status', status: 403, body: '{"errors":[{"code":"DENIED","message":"no"}]}' } });
    const result = await signed(['swap', `${viaProxy}/a:latest`, '--dependency', `${viaProxy}/python3:latest`]);
    assert.equal(result.exitCode, 1, result.stdout);
    assert.match(result.stderr, /DENIED/);
    assert.equal((await inspectImage(open(`${viaProxy}/a:latest`))).digest, before, 'the tag did not move');
    assert.ok(!proxy.requests.some((request) => request.method === 'PUT' && request.path.endsWith('/signed/a/manifests/latest')), 'no tag of a was written');
  });
});
