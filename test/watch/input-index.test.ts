import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { OciError } from '../../src/oci/errors.ts';
import { InputIndex, inputKey } from '../../src/watch/input-index.ts';

const every5 = '*/5 * * * *';
const every10s = '*/10 * * * * *';

describe('inputKey', () => {
  test('normalises transport, Docker Hub names and the default tag', () => {
    assert.equal(inputKey('docker://reg.example:5000/team/python3'), 'docker://reg.example:5000/team/python3:latest');
    assert.equal(inputKey('reg.example:5000/team/python3:latest'), 'docker://reg.example:5000/team/python3:latest');
    assert.equal(inputKey('docker://centos'), 'docker://docker.io/library/centos:latest');
    assert.equal(inputKey('docker://docker.io/library/centos:latest'), 'docker://docker.io/library/centos:latest');
    assert.equal(inputKey('oci:./images/../images:python3'), 'oci:images:python3');
    assert.equal(inputKey('oci:/srv/layout'), 'oci:/srv/layout:latest');
  });

  test('keeps the tag of a tag+digest reference and skips a reference pinned by digest alone', () => {
    const digest = `sha256:${'a'.repeat(64)}`;
    assert.equal(inputKey(`docker://reg.example/ssl:1@${digest}`), 'docker://reg.example/ssl:1');
    assert.equal(inputKey(`docker://reg.example/ssl@${digest}`), undefined);
  });

  test('a malformed reference is an error naming it', () => {
    assert.throws(() => inputKey('docker://reg.example/Upper:1'), (error: unknown) => error instanceof OciError && /Upper/.test(error.message));
  });
});

describe('InputIndex', () => {
  test('an input is checked once per credentials in use: owners without any share one check', () => {
    const index = new InputIndex();
    const ref = 'docker://reg.example/python3:latest';
    index.set('a/one', [{ ref, role: 'apply' }], every5, 'a/regcred');
    index.set('a/two', [{ ref, role: 'apply' }], every5, 'a/regcred');
    index.set('b/one', [{ ref, role: 'apply' }], every5, 'b/regcred');
    index.set('c/one', [{ ref, role: 'apply' }], every5);
    index.set('c/two', [{ ref: 'reg.example/python3', role: 'apply' }], every5);
    assert.equal(index.due(every5).length, 3);
    assert.deepEqual(index.checksOf(ref).sort(), [ref, `${ref} with a/regcred`, `${ref} with b/regcred`]);
    assert.equal(index.keyFor('a/two', ref), `${ref} with a/regcred`);
    assert.equal(index.keyFor('c/two', 'reg.example/python3'), ref);
    assert.equal(index.get(`${ref} with b/regcred`)?.credentials, 'b/regcred');
    assert.deepEqual(index.ownersOf(`${ref} with a/regcred`).sort(), ['a/one', 'a/two']);
    index.remove('b/one');
    assert.deepEqual(index.checksOf(ref).sort(), [ref, `${ref} with a/regcred`]);
  });

  test('1,000 owners sharing 10 inputs hold 10 entries, and a tick checks each once', () => {
    const index = new InputIndex();
    for (let owner = 0; owner < 1000; owner++) {
      const shared = owner % 10;
      index.set(`ns/sf-${owner}`, [
        { ref: `docker://reg.example/dep-${shared}:latest`, role: 'apply' },
        { ref: `reg.example/dep-${shared}`, role: 'apply' },
      ], every5);
    }
    assert.equal(index.size, 10);
    assert.equal(index.due(every5).length, 10);
    assert.equal(index.ownersOf('docker://reg.example/dep-3:latest').length, 100);
  });

  test('due() returns the unique inputs of the owners on that schedule only', () => {
    const index = new InputIndex();
    index.set('a', [{ ref: 'docker://reg.example/base', role: 'from' }, { ref: 'docker://reg.example/ssl', role: 'apply' }], every5);
    index.set('b', [{ ref: 'docker://reg.example/ssl', role: 'apply' }, { ref: 'docker://reg.example/python3', role: 'apply' }], every10s);
    assert.deepEqual(index.due(every5).map((input) => input.key).sort(), ['docker://reg.example/base:latest', 'docker://reg.example/ssl:latest']);
    assert.deepEqual(index.due(every10s).map((input) => input.key).sort(), ['docker://reg.example/python3:latest', 'docker://reg.example/ssl:latest']);
    assert.deepEqual(index.schedules().sort(), [every10s, every5].sort());
    assert.deepEqual(index.inputsOf('a'), [{ ref: 'docker://reg.example/base', role: 'from' }, { ref: 'docker://reg.example/ssl', role: 'apply' }]);
    assert.equal(index.scheduleOf('b'), every10s);
  });

  test('replacing and removing owners drops inputs nobody watches, with their digests', () => {
    const index = new InputIndex();
    index.set('a', [{ ref: 'docker://reg.example/ssl', role: 'apply' }], every5);
    index.set('b', [{ ref: 'docker://reg.example/ssl', role: 'apply' }], every5);
    index.record('docker://reg.example/ssl:latest', 'sha256:one');
    index.set('a', [{ ref: 'docker://reg.example/python3', role: 'apply' }], every5);
    assert.deepEqual(index.ownersOf('docker://reg.example/ssl:latest'), ['b']);
    assert.equal(index.digestOf('docker://reg.example/ssl:latest'), 'sha256:one', 'still watched by b');
    index.remove('b');
    assert.equal(index.has('docker://reg.example/ssl:latest'), false);
    index.set('b', [{ ref: 'docker://reg.example/ssl', role: 'apply' }], every5);
    assert.equal(index.digestOf('docker://reg.example/ssl:latest'), undefined, 'forgotten with its last owner');
    assert.deepEqual(index.schedules(), [every5]);
  });

  test('schedules() follows owners that share, change and drop a schedule', () => {
    const index = new InputIndex();
    const ssl = [{ ref: 'docker://reg.example/ssl', role: 'apply' as const }];
    index.set('a', ssl, every5);
    index.set('b', ssl, every5);
    index.set('a', ssl, every10s);
    assert.deepEqual(index.schedules().sort(), [every10s, every5].sort());
    index.set('a', ssl, every10s);
    index.remove('b');
    assert.deepEqual(index.schedules(), [every10s], 'every5 went with its last owner');
    index.remove('b');
    index.remove('a');
    assert.deepEqual(index.schedules(), []);
  });

  test('due() follows owners that move between schedules, share an input there, and leave', () => {
    const index = new InputIndex();
    const ssl = { ref: 'docker://reg.example/ssl', role: 'apply' as const };
    const python3 = { ref: 'docker://reg.example/python3', role: 'apply' as const };
    const dueOn = (schedule: string) => index.due(schedule).map((input) => input.key).sort();
    index.set('a', [ssl, python3], every5);
    index.set('b', [ssl], every5);
    index.set('a', [ssl, python3], every10s);
    assert.deepEqual(dueOn(every5), ['docker://reg.example/ssl:latest'], 'b still watches ssl on every5; python3 moved with a');
    assert.deepEqual(dueOn(every10s), ['docker://reg.example/python3:latest', 'docker://reg.example/ssl:latest']);
    index.set('a', [python3], every10s);
    assert.deepEqual(dueOn(every10s), ['docker://reg.example/python3:latest']);
    index.remove('b');
    assert.deepEqual(dueOn(every5), []);
    index.remove('a');
    assert.deepEqual(dueOn(every10s), []);
  });

  test('record() says whether the digest changed and what it was', () => {
    const index = new InputIndex();
    index.set('a', [{ ref: 'docker://reg.example/ssl', role: 'apply' }], every5);
    const key = 'docker://reg.example/ssl:latest';
    assert.deepEqual(index.record(key, 'sha256:one'), { changed: true, previous: undefined });
    assert.deepEqual(index.record(key, 'sha256:one'), { changed: false, previous: 'sha256:one' });
    assert.deepEqual(index.record(key, 'sha256:two'), { changed: true, previous: 'sha256:one' });
    assert.deepEqual(index.record('docker://reg.example/unwatched:latest', 'sha256:x'), { changed: false, previous: undefined });
  });
});
