import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { LayoutStore } from '../../src/oci/layout.ts';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { InputIndex } from '../../src/watch/input-index.ts';
import { Poller, type PollerOptions } from '../../src/watch/poller.ts';
import { RateLimits, type Clock } from '../../src/watch/rate-limit.ts';
import { eventually } from '../cluster/harness.ts';
import { makeImage, makeLayer, writeImage } from '../services/images.ts';
import { startOrSkip, startRegistry } from '../services/registry.ts';

const { service: registry, skip } = await startOrSkip(() => startRegistry());
after(() => registry?.stop());

const schedule = '*/5 * * * *';
const never = { attempts: 0, baseDelayMs: 1, maxDelayMs: 1 };

interface Change {
  key: string;
  previous: string | undefined;
  current: string;
  owners: string[];
}

/** A poller over a store cache of its own, so the test reads the requests it made. */
function pollerFor(index: InputIndex, options: Partial<PollerOptions> = {}) {
  const cache = new Map<string, RegistryStore>();
  const changes: Change[] = [];
  const poller = new Poller({
    index,
    store: { cache, registry: { retry: { attempts: 1 } } },
    retry: never,
    onChange: (key, previous, current, owners) => void changes.push({ key, previous, current, owners }),
    ...options,
  });
  const stats = () => {
    const store = [...cache.values()][0];
    assert.ok(store !== undefined, 'a registry store was opened');
    return store.stats;
  };
  return { poller, changes, stats };
}

const writerFor = (host: string) => new RegistryStore(host, { credentials: async () => undefined });

let pushes = 0;
/** Pushes a new image (new content each time) to `repository:latest` of the test registry. */
async function push(repository: string): Promise<string> {
  const image = makeImage({ layers: [await makeLayer({ [`etc/${repository}`]: `version ${++pushes}\n` })] });
  return (await writeImage(writerFor(registry!.host), repository, image, 'latest')).digest;
}

describe('Poller against docker-registry', { skip }, () => {
  test('reports each digest; a change (and the first sighting) calls back with the owners', async () => {
    const first = await push('poll/ssl');
    const index = new InputIndex();
    index.set('ns/a', [{ ref: `docker://${registry!.host}/poll/ssl`, role: 'apply' }], schedule);
    index.set('ns/b', [{ ref: `${registry!.host}/poll/ssl:latest`, role: 'apply' }], schedule);
    const { poller, changes } = pollerFor(index);
    const key = `docker://${registry!.host}/poll/ssl:latest`;

    assert.deepEqual(await poller.poll(schedule), new Map([[key, { digest: first }]]));
    assert.deepEqual(changes, [{ key, previous: undefined, current: first, owners: ['ns/a', 'ns/b'] }]);
    await poller.poll(schedule);
    assert.equal(changes.length, 1, 'the same digest is no change');

    const second = await push('poll/ssl');
    await poller.poll(schedule);
    assert.deepEqual(changes[1], { key, previous: first, current: second, owners: ['ns/a', 'ns/b'] });
    assert.deepEqual(poller.health().get(registry!.host), { reachable: true });
  });

  test('1,000 owners on 10 inputs cost exactly 10 registry requests a cycle (after the one-time /v2/ ping)', async () => {
    const index = new InputIndex();
    for (let input = 0; input < 10; input++) await push(`fleet/dep-${input}`);
    for (let owner = 0; owner < 1000; owner++) {
      index.set(`ns/sf-${owner}`, [{ ref: `docker://${registry!.host}/fleet/dep-${owner % 10}:latest`, role: 'apply' }], schedule);
    }
    const { poller, changes, stats } = pollerFor(index);
    for (let cycle = 1; cycle <= 3; cycle++) {
      const before = cycle === 1 ? 0 : stats().requests;
      const results = await poller.poll(schedule);
      assert.equal(results.size, 10);
      assert.ok([...results.values()].every((result) => 'digest' in result));
      // The registry's auth scheme is learnt once per process, from a GET /v2/ (here perhaps by the store that pushed), then only HEADs.
      const pings = stats().requestsByMethod['GET'] ?? 0;
      assert.ok(pings <= 1);
      assert.equal(stats().requests - before, cycle === 1 ? 10 + pings : 10, `requests in cycle ${cycle}`);
      assert.deepEqual(stats().requestsByMethod, { ...(pings === 0 ? {} : { GET: pings }), HEAD: 10 * cycle });
    }
    assert.equal(changes.length, 10, 'first sightings only');
    assert.equal(changes.reduce((sum, change) => sum + change.owners.length, 0), 1000);
  });

  test('a check already in flight for a key is shared, not doubled', async () => {
    await push('poll/python3');
    const index = new InputIndex();
    index.set('ns/a', [{ ref: `docker://${registry!.host}/poll/python3`, role: 'apply' }], schedule);
    const { poller, stats } = pollerFor(index);
    const key = `docker://${registry!.host}/poll/python3:latest`;
    const [one, two, three] = await Promise.all([poller.triggerNow([key]), poller.triggerNow([key, key]), poller.poll(schedule)]);
    assert.deepEqual(one, two);
    assert.deepEqual(one, three);
    assert.equal(stats().requestsByMethod['HEAD'], 1);
    assert.deepEqual(await poller.triggerNow(['docker://elsewhere.example/unwatched:latest']), new Map(), 'unwatched keys are skipped');
  });

  test('a pushed digest the tag does not show yet is checked again until seen', async () => {
    const before = await push('poll/lagging');
    const index = new InputIndex();
    index.set('ns/a', [{ ref: `docker://${registry!.host}/poll/lagging`, role: 'apply' }], schedule);
    const { poller, changes, stats } = pollerFor(index, { pushLag: { attempts: 20, delayMs: 20 } });
    const key = `docker://${registry!.host}/poll/lagging:latest`;
    await poller.poll(schedule);
    // As the registry does: the notification names the new digest before the tag moves to it.
    const writer = writerFor(registry!.host);
    const image = makeImage({ layers: [await makeLayer({ 'etc/lagging': 'next' })] });
    await writeImage(writer, 'poll/lagging', image);
    const announced = image.manifestDescriptor.digest;
    assert.deepEqual(await poller.triggerNow([key], new Map([[key, announced]])), new Map([[key, { digest: before }]]));
    await eventually('a re-check', async () => ((stats().requestsByMethod['HEAD'] ?? 0) >= 3 ? true : undefined), 10_000);
    await writer.tag('poll/lagging', 'latest', image.manifestDescriptor);
    await eventually('the announced digest', async () => (changes.length === 2 ? true : undefined), 10_000);
    assert.deepEqual(changes[1], { key, previous: before, current: announced, owners: ['ns/a'] });
    poller.stop();
  });

  test('honours the registry rate limit', async () => {
    for (const name of ['a', 'b', 'c']) await push(`limited/${name}`);
    const index = new InputIndex();
    index.set('ns/x', ['a', 'b', 'c'].map((name) => ({ ref: `docker://${registry!.host}/limited/${name}`, role: 'apply' as const })), schedule);
    let now = 0;
    const waits: number[] = [];
    const clock: Clock = { now: () => now, sleep: async (ms) => void (waits.push(ms), (now += ms)) };
    const limits = new RateLimits({ defaults: { requestsPerSecond: 2, burst: 1, maxConcurrency: 1 }, clock });
    const { poller } = pollerFor(index, { limits });
    const results = await poller.poll(schedule);
    assert.ok([...results.values()].every((result) => 'digest' in result));
    assert.deepEqual(waits, [500, 500]);
  });

  test('a missing tag is an error that is not retried, and the registry is reachable', async () => {
    const index = new InputIndex();
    index.set('ns/a', [{ ref: `docker://${registry!.host}/poll/ssl:no-such-tag`, role: 'apply' }], schedule);
    const { poller, changes } = pollerFor(index);
    const [result] = (await poller.poll(schedule)).values();
    assert.ok(result !== undefined && 'error' in result);
    assert.equal(result.retryable, false);
    assert.match(result.error, /no-such-tag/);
    assert.deepEqual(changes, []);
    assert.deepEqual(poller.health().get(registry!.host), { reachable: true });
  });
});

describe('Poller with a registry that goes down', () => {
  test('gives retryable errors, never a change, reports the registry unreachable and retries with backoff', async (t) => {
    const { service: down, skip: cannot } = await startOrSkip(() => startRegistry());
    if (down === undefined) return t.skip(cannot);
    const index = new InputIndex();
    index.set('ns/a', [{ ref: `docker://${down.host}/flaky/ssl`, role: 'apply' }], schedule);
    index.set('ns/b', [{ ref: `docker://${down.host}/flaky/python3`, role: 'apply' }], schedule);
    const writer = writerFor(down.host);
    for (const name of ['ssl', 'python3']) await writeImage(writer, `flaky/${name}`, makeImage({ layers: [await makeLayer({ [name]: name })] }), 'latest');

    const { poller, changes, stats } = pollerFor(index, { retry: { attempts: 2, baseDelayMs: 20, maxDelayMs: 40 } });
    await poller.poll(schedule);
    assert.equal(changes.length, 2);
    await down.stop();

    const results = await poller.poll(schedule);
    assert.ok([...results.values()].every((result) => 'error' in result && result.retryable && /UNREACHABLE|failed/.test(result.error)));
    const health = poller.health().get(down.host);
    assert.ok(health !== undefined && health.reachable === false && health.message.includes(down.host));
    const since = health.since;
    const failed = stats().requests;
    await eventually('2 retries of each input', async () => (stats().requests === failed + 4 ? true : undefined), 10_000);
    assert.equal(changes.length, 2, 'no change while the registry is down');
    const later = poller.health().get(down.host);
    assert.ok(later !== undefined && later.reachable === false);
    assert.equal(later.since, since, 'down since the first failure');
    poller.stop();
  });
});

describe('Poller over an OCI layout', () => {
  test('watches oci: inputs too', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'restack-watch-layout-'));
    try {
      const store = new LayoutStore(dir);
      const written = await writeImage(store, '', makeImage({ layers: [await makeLayer({ 'etc/os': 'layout' })] }), 'python3');
      const index = new InputIndex();
      index.set('local', [{ ref: `oci:${dir}:python3`, role: 'apply' }], schedule);
      const poller = new Poller({ index });
      assert.deepEqual(await poller.poll(schedule), new Map([[`oci:${dir}:python3`, { digest: written.digest }]]));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
