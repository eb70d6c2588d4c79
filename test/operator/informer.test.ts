import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { CoreV1Api, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import { pino } from 'pino';
import { eventually, useCluster, type Cluster } from '../cluster/harness.ts';
import { installCrds } from './install-crds.ts';
import { Informer } from '../../src/operator/informer.ts';
import { Kube, type ImageBuild, type Stackerfile } from '../../src/operator/kube.ts';
import { controllerUid } from '../../src/operator/stackerfile-controller.ts';

const api = { group: 'restack.dev', version: 'v1alpha1' };
const namespace = 'informer-test';

/** A TCP relay to the API server that can drop every connection and refuse new ones: a broken watch. */
async function startRelay(upstream: URL): Promise<{ server: Server; url: string; cut(): void; resume(): void }> {
  const sockets = new Set<Socket>();
  let refusing = false;
  const server = createServer((client) => {
    if (refusing) return void client.destroy();
    const target = connect(Number(upstream.port), upstream.hostname);
    for (const socket of [client, target]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => {});
    }
    client.pipe(target).pipe(client);
    client.on('close', () => target.destroy());
    target.on('close', () => client.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    server,
    url: `https://127.0.0.1:${port}`,
    cut() {
      refusing = true;
      for (const socket of sockets) socket.destroy();
    },
    resume() {
      refusing = false;
    },
  };
}

describe('the informer against a real API server', () => {
  let cluster: Cluster;
  let objects: CustomObjectsApi;
  let relay: Awaited<ReturnType<typeof startRelay>> & { kubeConfig: KubeConfig };
  let informer: Informer<ImageBuild>;
  const changes: string[] = [];
  const owners = new Map<string, string>();

  const createBuild = (name: string, owner: string) =>
    objects.createNamespacedCustomObject({
      ...api,
      namespace,
      plural: 'imagebuilds',
      body: {
        apiVersion: 'restack.dev/v1alpha1',
        kind: 'ImageBuild',
        metadata: { name, ownerReferences: [{ apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', name: owner, uid: owners.get(owner), controller: true }] },
        spec: { stackerfileRef: { name: owner }, strategy: 'Build', reason: 'Initial', recipeGeneration: 1 },
      },
    });
  const names = (builds: ImageBuild[]) => builds.map((build) => build.metadata?.name).sort();

  before(async () => {
    cluster = await useCluster();
    objects = cluster.kubeConfig.makeApiClient(CustomObjectsApi);
    await installCrds(cluster);
    await cluster.kubeConfig.makeApiClient(CoreV1Api).createNamespace({ body: { metadata: { name: namespace } } });
    for (const name of ['a', 'b']) {
      const created = (await objects.createNamespacedCustomObject({
        ...api,
        namespace,
        plural: 'stackerfiles',
        body: { apiVersion: 'restack.dev/v1alpha1', kind: 'Stackerfile', metadata: { name }, spec: { recipe: 'x:\n  from: {type: scratch}\n', output: { registry: '127.0.0.1:5000/t' } } },
      })) as Stackerfile;
      owners.set(name, created.metadata?.uid ?? '');
    }
    for (const [name, owner] of [['a-1', 'a'], ['a-2', 'a'], ['b-1', 'b']] as const) await createBuild(name, owner);

    const started = await startRelay(new URL(cluster.kubeConfig.getCurrentCluster()?.server ?? ''));
    const viaRelay = new KubeConfig();
    viaRelay.loadFromOptions({
      clusters: cluster.kubeConfig.clusters.map((entry) => ({ ...entry, server: started.url })),
      users: cluster.kubeConfig.users,
      contexts: cluster.kubeConfig.contexts,
      currentContext: cluster.kubeConfig.currentContext,
    });
    relay = { ...started, kubeConfig: viaRelay };
    const kube = new Kube(viaRelay);
    informer = new Informer<ImageBuild>({
      kubeConfig: viaRelay,
      path: kube.listPath('ImageBuild', namespace),
      // Pages of two: the three builds take two requests, one snapshot.
      list: async () => (await kube.list('ImageBuild', namespace, 2)) as { items: ImageBuild[] },
      onChange: (build, deleted) => changes.push(`${deleted ? 'deleted' : 'changed'} ${build.metadata?.name}`),
      indexBy: controllerUid,
      logger: pino({ level: 'silent' }),
      restartBackoff: { initialMs: 100, maxMs: 100 },
    });
    await informer.start();
  });
  after(async () => {
    await informer?.stop();
    relay?.server.close();
    await cluster?.stop();
  });

  test('the first list, read in pages, reports every object once and indexes them by their controller', () => {
    assert.deepEqual([...changes].sort(), ['changed a-1', 'changed a-2', 'changed b-1']);
    assert.deepEqual(names(informer.indexed(owners.get('a') ?? '')), ['a-1', 'a-2']);
    assert.deepEqual(names(informer.indexed(owners.get('b') ?? '')), ['b-1']);
  });

  test('after a broken watch only what changed meanwhile is reported, and the index follows', async () => {
    changes.length = 0;
    relay.cut();
    await objects.patchNamespacedCustomObject(
      { ...api, namespace, plural: 'imagebuilds', name: 'a-1', body: { metadata: { labels: { touched: 'yes' } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await objects.deleteNamespacedCustomObject({ ...api, namespace, plural: 'imagebuilds', name: 'a-2' });
    await createBuild('b-2', 'b');
    relay.resume();
    await eventually('the changes made while the watch was down', async () => (changes.length >= 3 ? true : undefined));
    // Events arrive in order: once a change made after reconnecting is seen, a replay would have shown before it.
    await createBuild('b-3', 'b');
    await eventually('b-3', async () => (changes.includes('changed b-3') ? true : undefined));
    assert.deepEqual([...changes].sort(), ['changed a-1', 'changed b-2', 'changed b-3', 'deleted a-2']);
    assert.equal(informer.get(`${namespace}/a-1`)?.metadata?.labels?.['touched'], 'yes');
    assert.deepEqual(names(informer.indexed(owners.get('a') ?? '')), ['a-1']);
    assert.deepEqual(names(informer.indexed(owners.get('b') ?? '')), ['b-1', 'b-2', 'b-3']);
  });

  test('while the API server is away, restarts back off exponentially with jitter up to the cap, and start over once the API server answers again', async () => {
    const failures: { failures: number; retryInMs: number }[] = [];
    const logger = pino({ level: 'warn' }, new Writable({
      write(line: Buffer, _encoding, done) {
        const entry = JSON.parse(line.toString()) as { failures?: number; retryInMs?: number };
        failures.push({ failures: entry.failures ?? 0, retryInMs: entry.retryInMs ?? -1 });
        done();
      },
    }));
    const kube = new Kube(relay.kubeConfig);
    const watched: string[] = [];
    const policy = { initialMs: 50, maxMs: 400 };
    const watcher = new Informer<ImageBuild>({
      kubeConfig: relay.kubeConfig,
      path: kube.listPath('ImageBuild', namespace),
      list: async () => (await kube.list('ImageBuild', namespace)) as { items: ImageBuild[] },
      onChange: (build) => watched.push(build.metadata?.name ?? ''),
      logger,
      restartBackoff: policy,
    });
    await watcher.start();
    try {
      relay.cut();
      await eventually('seven failed restarts', async () => (failures.length >= 7 ? true : undefined));
      failures.slice(0, 7).forEach((failure, i) => {
        const bound = Math.min(policy.maxMs, policy.initialMs * 2 ** i);
        assert.equal(failure.failures, i + 1);
        assert.ok(failure.retryInMs >= bound / 2 && failure.retryInMs <= bound, `wait ${i + 1}: ${failure.retryInMs} ms within [${bound / 2}, ${bound}]`);
      });
      relay.resume();
      // Back from the last resourceVersion: no list, the watch reconnects; a change proves it.
      const seen = changes.length;
      await createBuild('b-4', 'b');
      await eventually('b-4 through the reconnected watch', async () => (watched.includes('b-4') ? true : undefined));
      assert.ok(changes.length > seen);
      failures.length = 0;
      relay.cut();
      await eventually('a failure after the success', async () => (failures.length >= 1 ? true : undefined));
      assert.equal(failures[0]?.failures, 1, 'the backoff started over');
      assert.ok((failures[0]?.retryInMs ?? Infinity) <= policy.initialMs);
    } finally {
      relay.resume();
      await watcher.stop();
    }
  });
});
