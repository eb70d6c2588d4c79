import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KubeConfig, RequestContext } from '@kubernetes/client-node';
import { reuseConnections } from '../../src/operator/kube-connections.ts';

function kubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromOptions({
    clusters: [{ name: 'c', server: 'https://127.0.0.1:6443', caData: Buffer.from('not a real CA').toString('base64') }],
    users: [{ name: 'u', token: 'token' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u' }],
    currentContext: 'ctx',
  });
  return config;
}

async function dispatcherOfARequest(config: KubeConfig): Promise<unknown> {
  const context = new RequestContext('https://127.0.0.1:6443/api', 'GET');
  await config.applySecurityAuthentication(context);
  return context.getDispatcher();
}

test('client-node alone gives every request a dispatcher of its own (if this fails, it pools now: drop reuseConnections)', async () => {
  const config = kubeConfig();
  assert.notEqual(await dispatcherOfARequest(config), await dispatcherOfARequest(config));
});

test('reuseConnections gives the requests of one KubeConfig one dispatcher, so connections are reused', async () => {
  const config = reuseConnections(kubeConfig());
  const first = await dispatcherOfARequest(config);
  assert.notEqual(first, undefined);
  assert.equal(await dispatcherOfARequest(config), first);
});

test('a changed client certificate gets a dispatcher of its own', async () => {
  const config = reuseConnections(kubeConfig());
  const first = await dispatcherOfARequest(config);
  const user = config.getCurrentUser();
  assert.ok(user !== null);
  Object.assign(user, { certData: Buffer.from('cert 2').toString('base64'), keyData: Buffer.from('key 2').toString('base64') });
  assert.notEqual(await dispatcherOfARequest(config), first);
});
