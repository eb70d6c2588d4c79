/** The test registry itself: notifications reach an endpoint, so webhook tests can rely on them. */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, describe, test } from 'node:test';
import { RegistryStore } from '../../src/oci/registry/store.ts';
import { makeImage, makeLayer, writeImage } from './images.ts';
import { startOrSkip, startRegistry } from './registry.ts';

interface Envelope {
  events: Array<{ action: string; target: { mediaType: string; repository: string; digest: string; tag?: string } }>;
}

const received: Envelope[] = [];
let notify: () => void = () => undefined;
const endpoint = createServer((request, response) => {
  const chunks: Buffer[] = [];
  request.on('data', (chunk: Buffer) => chunks.push(chunk));
  request.on('end', () => {
    received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Envelope);
    response.writeHead(200).end();
    notify();
  });
});
await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
const endpointUrl = `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}/events`;

const { service: registry, skip } = await startOrSkip(() =>
  startRegistry({ notifications: [{ name: 'restack-test', url: endpointUrl, timeout: '2s', threshold: 3, backoff: '100ms', ignoredmediatypes: ['application/octet-stream'] }] }),
);
after(async () => {
  await registry?.stop();
  endpoint.closeAllConnections();
  await new Promise<void>((resolve) => endpoint.close(() => resolve()));
});

describe('test registry service', { skip }, () => {
  test('pushing a tag sends a push event for the manifest to the notification endpoint', async () => {
    const image = makeImage({ layers: [await makeLayer({ a: 'notify' })] });
    const store = new RegistryStore(registry!.host, { credentials: async () => undefined });
    const tagged = new Promise<void>((resolve) => {
      notify = () => {
        if (received.some((envelope) => envelope.events.some((event) => event.target.tag === 'v1'))) resolve();
      };
    });
    await writeImage(store, 'notify/app', image, 'v1');
    await tagged;
    const push = received.flatMap((envelope) => envelope.events).find((event) => event.target.tag === 'v1');
    assert.equal(push?.action, 'push');
    assert.equal(push?.target.repository, 'notify/app');
    assert.equal(push?.target.digest, image.manifestDescriptor.digest);
    assert.equal(push?.target.mediaType, image.manifestDescriptor.mediaType);
  });
});
