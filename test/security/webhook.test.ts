// Hostile input, the registry-notification receiver: it serves TLS with a certificate from files
// (as a mounted Secret), picks up a renewed one without a restart, and takes an HMAC-SHA256
// signature of the body instead of the bearer token; a bad signature is refused. A throwaway CA
// and certificates from openssl, a real https client.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { NotificationError, startWebhook, type WebhookReceiver } from '../../src/watch/webhook.ts';
import { eventually } from '../cluster/harness.ts';
import { restack } from '../cli/restack.ts';

const secret = 'shared-with-the-registry';
const body = JSON.stringify({ events: [{ action: 'push', target: { repository: 'team/python3', tag: 'latest', digest: `sha256:${'b'.repeat(64)}` }, request: { host: 'reg.example:5000' } }] });

/** A CA, and server certificates for 127.0.0.1 it signs, made by openssl in `dir`. */
async function certificates(dir: string) {
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  await execa('openssl', ['req', '-x509', ...ec, '-keyout', join(dir, 'ca.key'), '-out', join(dir, 'ca.crt'), '-subj', '/CN=restack-test-ca', '-days', '1']);
  await writeFile(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1\n');
  const issue = async (name: string) => {
    await execa('openssl', ['req', ...ec, '-keyout', join(dir, `${name}.key`), '-out', join(dir, `${name}.csr`), '-subj', `/CN=${name}`]);
    await execa('openssl', ['x509', '-req', '-in', join(dir, `${name}.csr`), '-CA', join(dir, 'ca.crt'), '-CAkey', join(dir, 'ca.key'), '-CAcreateserial', '-out', join(dir, `${name}.crt`), '-days', '1', '-extfile', join(dir, 'san.ext')]);
    return { cert: await readFile(join(dir, `${name}.crt`)), key: await readFile(join(dir, `${name}.key`)) };
  };
  return { ca: await readFile(join(dir, 'ca.crt')), issue };
}

interface Answer {
  status: number;
  text: string;
  /** The CN of the certificate the receiver served. */
  served: string;
}

/** POSTs the body over https on a new connection (a new handshake), trusting only the test's CA. */
function post(url: string, ca: Buffer, headers: Record<string, string>, payload = body): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(url, { method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json', ...headers } }, (response) => {
      const served = String((response.socket as TLSSocket).getPeerCertificate().subject?.CN ?? '');
      let text = '';
      response.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, text: text.trim(), served }));
    });
    request.on('error', reject);
    request.end(payload);
  });
}

const sign = (payload: string, key = secret) => `sha256=${createHmac('sha256', key).update(payload).digest('hex')}`;

describe('the webhook receiver over TLS', () => {
  let dir: string;
  let ca: Buffer;
  let issue: (name: string) => Promise<{ cert: Buffer; key: Buffer }>;
  let receiver: WebhookReceiver;
  const pushed: string[][] = [];
  const errors: unknown[] = [];
  const certFile = () => join(dir, 'tls.crt');
  const keyFile = () => join(dir, 'tls.key');

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'restack-webhook-tls-'));
    ({ ca, issue } = await certificates(dir));
    const first = await issue('webhook-1');
    await writeFile(certFile(), first.cert);
    await writeFile(keyFile(), first.key);
    receiver = await startWebhook({
      secret,
      tls: { certFile: certFile(), keyFile: keyFile(), recheckMs: 50 },
      isWatched: () => true,
      onPush: (keys) => void pushed.push(keys),
      onError: (error) => errors.push(error),
    });
  });
  after(async () => {
    await receiver?.close();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test('https with the certificate from the files; the bearer token is accepted', async () => {
    assert.match(receiver.url, /^https:\/\/127\.0\.0\.1:\d+\/webhook\/registry$/);
    const answer = await post(receiver.url, ca, { authorization: `Bearer ${secret}` });
    assert.deepEqual(answer, { status: 200, text: '1 watched input(s) to check', served: 'webhook-1' });
  });

  test('plain http on the same port gets no answer: the token never crosses in clear', async () => {
    const plain = receiver.url.replace(/^https:/, 'http:');
    await assert.rejects(
      new Promise((resolve, reject) => {
        const request = httpRequest(plain, { method: 'POST', headers: { authorization: `Bearer ${secret}` } }, resolve);
        request.on('error', reject);
        request.end(body);
      }),
    );
  });

  test('an HMAC-SHA256 signature of the body stands for the token; a bad one, or one of another body, is refused', async () => {
    assert.equal((await post(receiver.url, ca, { 'x-restack-signature': sign(body) })).status, 200);
    const refused = 'missing or wrong bearer secret, and no good x-restack-signature: sha256=<HMAC-SHA256 of the body>';
    assert.deepEqual(await post(receiver.url, ca, { 'x-restack-signature': sign(body, 'not the secret') }), { status: 401, text: refused, served: 'webhook-1' });
    assert.equal((await post(receiver.url, ca, { 'x-restack-signature': sign('{"events":[]}') })).status, 401, 'signed another body');
    assert.equal((await post(receiver.url, ca, { 'x-restack-signature': 'sha256=zz' })).status, 401);
    assert.equal((await post(receiver.url, ca, { 'x-restack-signature': sign(body).replace('sha256=', 'sha1=') })).status, 401);
    assert.equal((await post(receiver.url, ca, {})).status, 401);
    assert.equal((await post(receiver.url, ca, { authorization: 'Bearer wrong' })).status, 401);
  });

  test('a renewed certificate is served without a restart', async () => {
    const renewed = await issue('webhook-2');
    // As a Secret update lands: the files change one after the other (a moment of mismatched pair).
    await writeFile(keyFile(), renewed.key);
    await writeFile(certFile(), renewed.cert);
    const answer = await eventually('the renewed certificate served', async () => {
      const seen = await post(receiver.url, ca, { authorization: `Bearer ${secret}` });
      return seen.served === 'webhook-2' ? seen : undefined;
    });
    assert.equal(answer.status, 200);
  });

  test('files that are no certificate, or missing, stop the start with a message naming them', async () => {
    await writeFile(join(dir, 'bad.crt'), 'not a certificate\n');
    await assert.rejects(
      startWebhook({ secret, tls: { certFile: join(dir, 'bad.crt'), keyFile: keyFile() }, isWatched: () => true, onPush: () => undefined }),
      (error: unknown) => error instanceof NotificationError && error.message.startsWith(`the webhook's certificate ${join(dir, 'bad.crt')} and key ${keyFile()} are not a TLS identity`),
    );
    await assert.rejects(
      startWebhook({ secret, tls: { certFile: join(dir, 'absent.crt'), keyFile: keyFile() }, isWatched: () => true, onPush: () => undefined }),
      (error: unknown) => error instanceof NotificationError && error.message === `the webhook's TLS certificate ${join(dir, 'absent.crt')} cannot be read (ENOENT); mount the kubernetes.io/tls Secret there`,
    );
  });
});

test('restack operator takes the certificate and key together, for the webhook only', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'restack-webhook-flags-'));
  try {
    await writeFile(join(dir, 'secret'), secret);
    const operator = (flags: string[]) => restack(['operator', '--executor', 'local', ...flags], { env: { KUBECONFIG: join(dir, 'no-kubeconfig') } });
    const alone = await operator(['--webhook-bind-address', '127.0.0.1:0', '--webhook-secret-file', join(dir, 'secret'), '--webhook-cert-file', join(dir, 'tls.crt')]);
    assert.equal(alone.exitCode, 1);
    assert.match(alone.stderr, /error: --webhook-key-file is missing: the webhook serves TLS with both\n\s+hint: give --webhook-cert-file tls\.crt and --webhook-key-file tls\.key/);
    const unused = await operator(['--webhook-cert-file', join(dir, 'tls.crt'), '--webhook-key-file', join(dir, 'tls.key')]);
    assert.equal(unused.exitCode, 1);
    assert.match(unused.stderr, /error: --webhook-cert-file and --webhook-key-file serve --webhook-bind-address/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
