import assert from 'node:assert/strict';
import { after, describe, test } from 'node:test';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { InputIndex } from '../../src/watch/input-index.ts';
import { Poller } from '../../src/watch/poller.ts';
import { authorized, eventsMediaType, NotificationError, parseNotification, pushedInputs, startWebhook } from '../../src/watch/webhook.ts';
import { eventually } from '../cluster/harness.ts';
import { makeImage, makeLayer, writeImage } from '../services/images.ts';
import { startOrSkip, startRegistry } from '../services/registry.ts';

const secret = 's3cret-shared-with-the-registry';
const manifestType = 'application/vnd.oci.image.manifest.v1+json';

function pushEvent(repository: string, tag: string | undefined, host = 'reg.example:5000', mediaType = manifestType) {
  return {
    action: 'push',
    target: { mediaType, digest: `sha256:${'b'.repeat(64)}`, repository, ...(tag === undefined ? {} : { tag }), url: `http://${host}/v2/${repository}/manifests/sha256:${'b'.repeat(64)}` },
    request: { host },
  };
}

describe('notification parsing', () => {
  test('a manifest push by tag names its input; pulls, blob pushes and pushes by digest do not', () => {
    const events = parseNotification(
      JSON.stringify({
        events: [
          pushEvent('team/python3', 'latest'),
          { ...pushEvent('team/ssl', 'latest'), action: 'pull' },
          pushEvent('team/ssl', undefined, 'reg.example:5000', 'application/vnd.oci.image.layer.v1.tar+gzip'),
          pushEvent('team/base', undefined),
        ],
      }),
    );
    assert.deepEqual(pushedInputs(events), {
      keys: ['docker://reg.example:5000/team/python3:latest'],
      announced: new Map([['docker://reg.example:5000/team/python3:latest', `sha256:${'b'.repeat(64)}`]]),
    });
  });

  test('aliases map the name the registry is pushed to onto the name inputs use', () => {
    const events = [pushEvent('team/python3', 'v2', 'registry.restack.svc:5000')];
    assert.deepEqual(pushedInputs(events, { 'registry.restack.svc:5000': 'reg.example' }).keys, ['docker://reg.example/team/python3:v2']);
  });

  test('a body that is not an envelope is a NotificationError saying what is wrong', () => {
    assert.throws(() => parseNotification('not json'), NotificationError);
    assert.throws(() => parseNotification('{"events":[{"target":{}}]}'), (error: unknown) => error instanceof NotificationError && /events\.0\.action/.test(error.message));
  });

  test('the bearer secret must match exactly', () => {
    assert.equal(authorized(`Bearer ${secret}`, secret), true);
    assert.equal(authorized(`bearer ${secret}`, secret), true);
    assert.equal(authorized(`Bearer ${secret}x`, secret), false);
    assert.equal(authorized(secret, secret), false);
    assert.equal(authorized(undefined, secret), false);
    assert.equal(authorized('Bearer ', ''), false);
  });
});

describe('webhook receiver', () => {
  test('answers 401 without the secret, 400 for a bad body, 404/405 elsewhere, 200 otherwise', async () => {
    const pushed: string[][] = [];
    const receiver = await startWebhook({ secret, isWatched: (key) => key.endsWith('/team/python3:latest'), onPush: (keys) => void pushed.push(keys) });
    try {
      const post = (body: string, authorization = `Bearer ${secret}`, url = receiver.url) =>
        fetch(url, { method: 'POST', headers: { authorization, 'content-type': eventsMediaType }, body }).then(async (response) => [response.status, (await response.text()).trim()] as const);
      const good = JSON.stringify({ events: [pushEvent('team/python3', 'latest'), pushEvent('team/other', 'latest')] });
      assert.equal((await post(good, 'Bearer wrong'))[0], 401);
      assert.equal((await post(good, ''))[0], 401);
      assert.deepEqual(pushed, []);
      const [status, message] = await post('{"events": 3}');
      assert.equal(status, 400);
      assert.match(message, /events/);
      assert.equal((await post(good, `Bearer ${secret}`, receiver.url.replace('/webhook/registry', '/elsewhere')))[0], 404);
      assert.equal((await fetch(receiver.url, { headers: { authorization: `Bearer ${secret}` } })).status, 405);
      assert.equal((await post(good))[0], 200);
      assert.equal((await post(JSON.stringify({ events: [] })))[0], 200);
      assert.deepEqual(pushed, [['docker://reg.example:5000/team/python3:latest']]);
    } finally {
      await receiver.close();
    }
  });

  test('refuses to start without a secret', async () => {
    await assert.rejects(startWebhook({ secret: '', isWatched: () => true, onPush: () => undefined }), NotificationError);
  });
});

// The receiver must be listening before the registry is configured with its URL.
const index = new InputIndex();
const changes: Array<{ key: string; previous: string | undefined; current: string }> = [];
const poller = new Poller({ index, retry: { attempts: 0, baseDelayMs: 1, maxDelayMs: 1 }, onChange: (key, previous, current) => void changes.push({ key, previous, current }) });
const pushed: string[][] = [];
const receiver = await startWebhook({
  secret,
  isWatched: (key) => index.has(key),
  onPush: async (keys, announced) => {
    pushed.push(keys);
    await poller.triggerNow(keys, announced);
  },
});
const { service: registry, skip } = await startOrSkip(() =>
  startRegistry({ notifications: [{ name: 'restack', url: receiver.url, headers: { Authorization: [`Bearer ${secret}`] }, timeout: '2s', threshold: 5, backoff: '1s' }] }),
);
after(async () => {
  poller.stop();
  await registry?.stop();
  await receiver.close();
});

describe('webhook receiver fed by a real docker-registry', { skip }, () => {
  test('a push to a watched repository and tag is checked at once; pulls and other repositories are not', async () => {
    const store = new RegistryStore(registry!.host, { credentials: async () => undefined });
    let version = 0;
    const push = async (repository: string) => (await writeImage(store, repository, makeImage({ layers: [await makeLayer({ 'etc/v': `${++version}` })] }), 'latest')).digest;
    const key = `docker://${registry!.host}/hook/python3:latest`;
    const first = await push('hook/python3');
    index.set('ns/a', [{ ref: `docker://${registry!.host}/hook/python3`, role: 'apply' }], '*/5 * * * *');
    await poller.poll('*/5 * * * *');
    assert.deepEqual(changes, [{ key, previous: undefined, current: first }]);

    await push('hook/unwatched');
    await store.getManifest('hook/python3', 'latest');
    const second = await push('hook/python3');
    await eventually('the push to be checked', async () => (changes.length === 2 ? true : undefined), 20_000);
    assert.deepEqual(changes[1], { key, previous: first, current: second });
    assert.ok(pushed.flat().every((pushedKey) => pushedKey === key), `only the watched input was triggered: ${JSON.stringify(pushed)}`);
  });
});
