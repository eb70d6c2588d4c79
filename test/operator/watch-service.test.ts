import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { pino } from 'pino';
import { eventually } from '../cluster/harness.ts';
import { startOrSkip, startRegistry } from '../services/registry.ts';
import { makeLayer } from '../services/images.ts';
import { pushLayered } from '../swap/seeds.ts';
import { WatchService } from '../../src/operator/watch-service.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());

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

  test('an invalid schedule is a problem naming spec.updates.schedule', () => {
    service.watch('ns/c', { inputs: [{ ref: `${prefix}/python3:latest`, role: 'apply' }], outputs: [], schedule: 'every minute' });
    assert.equal(service.problems('ns/c')?.reason, 'InvalidSchedule');
    assert.match(service.problems('ns/c')?.message ?? '', /spec\.updates\.schedule "every minute"/);
  });
});
