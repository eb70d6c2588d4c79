import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { eventually } from '../cluster/harness.ts';
import { startOrSkip, startRegistry } from '../services/registry.ts';
import { makeImage, makeLayer, writeImage } from '../services/images.ts';
import { credentialsFromDockerConfigJson } from '../../src/oci/registry/credential-provider.ts';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { pushLayered } from '../swap/seeds.ts';
import { WatchService } from '../../src/operator/watch-service.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());
const users = { alice: 'correct horse' };
const { service: privateRegistry, skip: privateSkip } = await startOrSkip(() => startRegistry({ htpasswd: users }));

describe('the operator watch service', { ...(skip === undefined ? {} : { skip }) }, () => {
  const requeued: string[] = [];
  const service = new WatchService({ logger: pino({ level: 'silent' }), requeue: (owners) => requeued.push(...owners), jitterWindowMs: 0 });
  const prefix = `docker://${registry?.host}/watch`;
  const yearly = '0 0 1 1 *';
  after(async () => {
    await service.stop();
    await registry?.stop();
  });

  test('the first check records each input digest and re-queues its owners; registries are reported', async () => {
    const layer = await makeLayer({ 'usr/bin/python3': 'python 3.11\n' });
    const digest = await pushLayered(prefix, 'python3', [layer]);
    service.watch('ns/a', { inputs: [{ ref: `${prefix}/python3:latest`, role: 'apply' }], outputs: [`${prefix}/a:latest`], schedule: yearly });
    await eventually('the first check', async () => service.currentDigests('ns/a').get(`${prefix}/python3:latest`));
    assert.equal(service.currentDigests('ns/a').get(`${prefix}/python3:latest`), digest);
    assert.ok(requeued.includes('ns/a'));
    assert.equal(service.problems('ns/a')?.reason, 'Checked');
  });

  test('a publish is checked at once (the cascade), not at the next tick', async () => {
    const digest = await pushLayered(prefix, 'python3', [await makeLayer({ 'usr/bin/python3': 'python 3.12\n' })]);
    requeued.length = 0;
    service.published([`${prefix}/python3:latest`]);
    await eventually('the new digest', async () => (service.currentDigests('ns/a').get(`${prefix}/python3:latest`) === digest ? true : undefined));
    assert.deepEqual(requeued, ['ns/a']);
  });

  test('Stackerfiles using each other\'s images are a cycle on each, until it is broken', () => {
    requeued.length = 0;
    service.watch('ns/b', { inputs: [{ ref: `${prefix}/a:latest`, role: 'apply' }], outputs: [`${prefix}/b:latest`], schedule: yearly });
    assert.notEqual(service.problems('ns/b')?.reason, 'DependencyCycle', 'b uses a, a does not use b: no cycle');
    service.watch('ns/a', { inputs: [{ ref: `${prefix}/python3:latest`, role: 'apply' }, { ref: `${prefix}/b:latest`, role: 'apply' }], outputs: [`${prefix}/a:latest`], schedule: yearly });
    for (const owner of ['ns/a', 'ns/b']) {
      assert.equal(service.problems(owner)?.reason, 'DependencyCycle');
      assert.match(service.problems(owner)?.message ?? '', /ns\/a, ns\/b/);
    }
    assert.deepEqual([...new Set(requeued)].sort(), ['ns/a', 'ns/b']);
    service.forget('ns/b');
    assert.notEqual(service.problems('ns/a')?.reason, 'DependencyCycle');
  });

  test('a Stackerfile awaiting two first checks is re-queued once both have ended, one answered and one failed, never while awaiting', async () => {
    await pushLayered(prefix, 'ssl', [await makeLayer({ 'usr/lib/libssl.so.3': 'ssl 3.0\n' })]);
    // A registry that answers 503: its check fails after the store's retries, long after the other has answered.
    const busy = createServer((_request, response) => response.writeHead(503).end());
    await new Promise<void>((resolve) => busy.listen(0, '127.0.0.1', resolve));
    const owner = 'ns/two-inputs';
    const whenRequeued: boolean[] = [];
    const watching = new WatchService({
      logger: pino({ level: 'silent' }),
      requeue: (owners) => owners.filter((key) => key === owner).forEach(() => whenRequeued.push(watching.awaitingCheck(owner))),
      jitterWindowMs: 0,
    });
    try {
      const failing = `docker://127.0.0.1:${(busy.address() as AddressInfo).port}/busy/base:latest`;
      watching.watch(owner, { inputs: [{ ref: `${prefix}/ssl:latest`, role: 'apply' }, { ref: failing, role: 'from' }], outputs: [], schedule: yearly });
      assert.equal(watching.awaitingCheck(owner), true);
      await eventually('the re-queue', async () => (whenRequeued.length > 0 ? true : undefined), 60_000);
      assert.deepEqual(whenRequeued, [false], 're-queued once, when no check was awaited any more');
      assert.equal(watching.problems(owner)?.reason, 'RegistryUnreachable');
    } finally {
      await watching.stop();
      busy.close();
    }
  });

  test('an invalid schedule is a problem naming spec.updates.schedule', () => {
    service.watch('ns/c', { inputs: [{ ref: `${prefix}/python3:latest`, role: 'apply' }], outputs: [], schedule: 'every minute' });
    assert.equal(service.problems('ns/c')?.reason, 'InvalidSchedule');
    assert.match(service.problems('ns/c')?.message ?? '', /spec\.updates\.schedule "every minute"/);
  });
});

describe('the operator watch service with registry credentials', { ...(privateSkip === undefined ? {} : { skip: privateSkip }) }, () => {
  const host = privateRegistry?.host ?? '';
  const secret = credentialsFromDockerConfigJson(JSON.stringify({ auths: { [host]: { auth: Buffer.from(`alice:${users.alice}`).toString('base64') } } }), 'Secret ns/regcred');
  const asked: string[] = [];
  const service = new WatchService({
    logger: pino({ level: 'silent' }),
    requeue: () => {},
    jitterWindowMs: 0,
    credentialsFor: (name) => {
      asked.push(name);
      return secret;
    },
  });
  const ref = `docker://${host}/private/python3:latest`;
  const yearly = '0 0 1 1 *';
  after(async () => {
    await service.stop();
    await privateRegistry?.stop();
  });

  test("an input is checked with the owner's credentials, and apart for an owner without them, whose check fails", async () => {
    const image = makeImage({ layers: [await makeLayer({ 'usr/bin/python3': 'private 3.11\n' })] });
    const { digest } = await writeImage(new RegistryStore(host, { credentials: secret }), 'private/python3', image, 'latest');
    service.watch('ns/with', { inputs: [{ ref, role: 'apply' }], outputs: [], schedule: yearly, credentials: 'ns/regcred' });
    service.watch('ns/without', { inputs: [{ ref, role: 'apply' }], outputs: [], schedule: yearly });
    await eventually('the check with credentials', async () => service.currentDigests('ns/with').get(ref));
    assert.equal(service.currentDigests('ns/with').get(ref), digest);
    assert.equal(service.problems('ns/with')?.reason, 'Checked');
    await eventually('the anonymous check to fail', async () => (service.problems('ns/without')?.reason === 'CheckFailed' ? true : undefined));
    assert.match(service.problems('ns/without')?.message ?? '', /private\/python3:latest: .*check the credentials for/);
    assert.equal(service.currentDigests('ns/without').size, 0);
    assert.deepEqual([...new Set(asked)], ['ns/regcred']);
  });

  test('a publish of the input checks it under every credentials in use', async () => {
    const image = makeImage({ layers: [await makeLayer({ 'usr/bin/python3': 'private 3.12\n' })] });
    const { digest } = await writeImage(new RegistryStore(host, { credentials: secret }), 'private/python3', image, 'latest');
    service.published([ref]);
    await eventually('the new digest', async () => (service.currentDigests('ns/with').get(ref) === digest ? true : undefined));
    assert.equal(service.problems('ns/without')?.reason, 'CheckFailed');
  });
});

describe('the minimum schedule interval', () => {
  test('a spec.updates.schedule that checks more often than the operator allows is an InvalidSchedule problem naming the field, and nothing is polled', async () => {
    const service = new WatchService({ logger: pino({ level: 'silent' }), requeue: () => {}, jitterWindowMs: 0, minScheduleIntervalMs: 30_000 });
    try {
      service.watch('team/greedy', { inputs: [{ ref: 'docker://registry.example/base:latest', role: 'from' }], outputs: [], schedule: '* * * * * *' });
      const problems = service.problems('team/greedy');
      assert.equal(problems?.reason, 'InvalidSchedule');
      assert.match(problems?.message ?? '', /^spec\.updates\.schedule "\* \* \* \* \* \*": it runs 1 s apart, more often than this operator allows \(--min-schedule-interval 30\)/);
      assert.equal(service.currentDigests('team/greedy').size, 0);
    } finally {
      await service.stop();
    }
  });
});

describe('an input no check has reached yet', () => {
  test('holds its owners back until its first check ends, failed or not, and then re-queues them', async () => {
    const requeued: string[] = [];
    const service = new WatchService({ logger: pino({ level: 'silent' }), requeue: (owners) => requeued.push(...owners), jitterWindowMs: 0 });
    // Nothing listens on port 1: the check fails as an unreachable registry.
    const ref = 'docker://127.0.0.1:1/closed/base:latest';
    try {
      service.watch('ns/first', { inputs: [{ ref, role: 'from' }], outputs: [], schedule: '0 0 1 1 *' });
      assert.equal(service.awaitingCheck('ns/first'), true);
      assert.equal(service.problems('ns/first'), undefined);
      await eventually('the failed check to re-queue its owner', async () => (requeued.includes('ns/first') ? true : undefined), 60_000);
      assert.equal(service.awaitingCheck('ns/first'), false);
      assert.equal(service.problems('ns/first')?.reason, 'RegistryUnreachable');
      service.watch('ns/later', { inputs: [{ ref, role: 'from' }], outputs: [], schedule: '0 0 1 1 *' });
      assert.equal(service.awaitingCheck('ns/later'), false, 'the input has had its check');
      service.watch('ns/pinned', { inputs: [{ ref: `docker://127.0.0.1:1/closed/base@sha256:${'a'.repeat(64)}`, role: 'from' }], outputs: [], schedule: '0 0 1 1 *' });
      assert.equal(service.awaitingCheck('ns/pinned'), false, 'an input pinned by digest is never checked');
    } finally {
      await service.stop();
    }
  });
});
