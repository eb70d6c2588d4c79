// A mutating admission webhook that removes spec.hostUsers from every pod it is sent, as an API
// server without user namespaces for pods drops the field: the real API server then stores a
// build pod without it, which is what the pod executor must never let run.
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

export interface DroppingWebhook {
  url: string;
  /** The self-signed certificate the API server trusts for it, base64. */
  caBundle: string;
  stop(): Promise<void>;
}

interface AdmissionReview {
  request: { uid: string; object: { spec?: { hostUsers?: boolean; containers?: { securityContext?: { procMount?: string } }[] } } };
}

export async function startDroppingWebhook(): Promise<DroppingWebhook> {
  const dir = await mkdtemp(join(tmpdir(), 'restack-webhook-'));
  try {
    await execa('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1',
      '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ]);
    const [key, cert] = await Promise.all([readFile(join(dir, 'key.pem')), readFile(join(dir, 'cert.pem'))]);
    const server: Server = createServer({ key, cert }, (request, response) => {
      let body = '';
      request.setEncoding('utf8').on('data', (chunk: string) => (body += chunk));
      request.on('end', () => {
        const review = JSON.parse(body) as AdmissionReview;
        const spec = review.request.object.spec ?? {};
        // An unmasked /proc is valid only with hostUsers: false: the default /proc goes with it, as it would on such a server.
        const patch = [
          ...(spec.hostUsers === undefined ? [] : [{ op: 'remove', path: '/spec/hostUsers' }]),
          ...(spec.containers ?? []).flatMap((container, index) =>
            container.securityContext?.procMount === undefined ? [] : [{ op: 'remove', path: `/spec/containers/${index}/securityContext/procMount` }],
          ),
        ];
        response.writeHead(200, { 'Content-Type': 'application/json' }).end(
          JSON.stringify({
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: { uid: review.request.uid, allowed: true, patchType: 'JSONPatch', patch: Buffer.from(JSON.stringify(patch)).toString('base64') },
          }),
        );
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return {
      url: `https://127.0.0.1:${port}/mutate`,
      caBundle: cert.toString('base64'),
      stop: () => new Promise((resolve) => server.close(() => resolve())),
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
