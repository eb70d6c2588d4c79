import assert from 'node:assert/strict';
import { test } from 'node:test';
import { OciError } from '../../src/oci/errors.ts';
import { formatReference, parseReference } from '../../src/oci/reference.ts';

const digest = `sha256:${'a'.repeat(64)}`;

test('a bare Docker Hub name gets the API host, library/ and latest', () => {
  assert.deepEqual(parseReference('centos'), { transport: 'docker', registry: 'registry-1.docker.io', repository: 'library/centos', tag: 'latest' });
  assert.deepEqual(parseReference('docker://docker.io/team/app:1.2'), { transport: 'docker', registry: 'registry-1.docker.io', repository: 'team/app', tag: '1.2' });
  assert.equal(formatReference(parseReference('centos:7')), 'docker://docker.io/library/centos:7');
});

test('host:port is a registry, not a tag', () => {
  assert.deepEqual(parseReference('docker://127.0.0.1:5000/ssl'), { transport: 'docker', registry: '127.0.0.1:5000', repository: 'ssl', tag: 'latest' });
  assert.deepEqual(parseReference('localhost/a/b:v1'), { transport: 'docker', registry: 'localhost', repository: 'a/b', tag: 'v1' });
  assert.deepEqual(parseReference('docker://[::1]:5000/x:y'), { transport: 'docker', registry: '[::1]:5000', repository: 'x', tag: 'y' });
});

test('digests, with or without a tag', () => {
  assert.deepEqual(parseReference(`docker://reg.example:443/a@${digest}`), { transport: 'docker', registry: 'reg.example:443', repository: 'a', digest });
  assert.deepEqual(parseReference(`reg.example/a:t@${digest}`), { transport: 'docker', registry: 'reg.example', repository: 'a', tag: 't', digest });
});

test('oci:DIR[:TAG] names a layout and a ref name, latest by default', () => {
  assert.deepEqual(parseReference('oci:/tmp/layout:v1'), { transport: 'oci', dir: '/tmp/layout', tag: 'v1' });
  assert.deepEqual(parseReference('oci:./out'), { transport: 'oci', dir: './out', tag: 'latest' });
  assert.deepEqual(parseReference(`oci:out@${digest}`), { transport: 'oci', dir: 'out', digest });
});

test('bad references are REFERENCE_INVALID and say why', () => {
  const cases: Array<[string, RegExp]> = [
    ['docker://', /nothing after docker:\/\//],
    ['docker://Reg.example/UPPER', /repository "UPPER" is not valid/],
    ['reg.example/a@sha256:abc', /not a sha256 digest/],
    ['reg.example/a:bad!tag', /tag "bad!tag" is not valid/],
    ['http://reg.example/a', /transport "http" is not supported/],
    ['oci:', /no directory/],
  ];
  for (const [input, message] of cases) {
    assert.throws(() => parseReference(input), (error: unknown) => error instanceof OciError && error.code === 'REFERENCE_INVALID' && message.test(error.message), input);
  }
});
