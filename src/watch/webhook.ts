import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { fileVersion } from '../oci/file-version.ts';
import { inputKey } from './input-index.ts';

export const defaultWebhookPath = '/webhook/registry';
/** The distribution registry's notification envelope. */
export const eventsMediaType = 'application/vnd.docker.distribution.events.v1+json';
const maxBodyBytes = 1024 * 1024;

// Only the fields restack reads; the registry sends more (id, timestamp, actor, source...).
const eventSchema = z.object({
  action: z.string(),
  target: z
    .object({
      mediaType: z.string().optional(),
      digest: z.string().optional(),
      repository: z.string().optional(),
      tag: z.string().optional(),
      url: z.string().optional(),
    })
    .optional(),
  request: z.object({ host: z.string().optional() }).optional(),
});
const envelopeSchema = z.object({ events: z.array(eventSchema) });

export type RegistryEvent = z.infer<typeof eventSchema>;

/** A notification body that is not an events envelope. */
export class NotificationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NotificationError';
  }
}

export function parseNotification(body: string): RegistryEvent[] {
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new NotificationError(`the body is not JSON; expected an ${eventsMediaType} envelope {"events":[...]}`);
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new NotificationError(`${issue?.path.join('.') || 'body'}: ${issue?.message ?? 'invalid'}; expected an ${eventsMediaType} envelope {"events":[...]}`);
  }
  return parsed.data.events;
}

/** What a batch of events pushed: input keys, and the manifest digest each was pushed with. */
export interface Pushed {
  keys: string[];
  announced: Map<string, string>;
}

/**
 * The inputs a batch of events pushed: manifest pushes by tag only (blob pushes and pulls say
 * nothing about a tag). The registry is named by the host the pusher used and by the host in the
 * target URL; `aliases` maps names the registry is reached by to the name inputs use.
 */
export function pushedInputs(events: readonly RegistryEvent[], aliases: Readonly<Record<string, string>> = {}): Pushed {
  const announced = new Map<string, string>();
  const keys = new Set<string>();
  for (const event of events) {
    const target = event.target;
    if (event.action !== 'push' || target?.repository === undefined || target.tag === undefined || target.tag === '') continue;
    for (const host of hostsOf(event)) {
      let key: string | undefined;
      try {
        key = inputKey(`docker://${aliases[host] ?? host}/${target.repository}:${target.tag}`);
      } catch {
        // a name that is no reference cannot be watched
      }
      if (key === undefined) continue;
      keys.add(key);
      if (target.digest !== undefined) announced.set(key, target.digest);
    }
  }
  return { keys: [...keys], announced };
}

function hostsOf(event: RegistryEvent): string[] {
  const hosts = new Set<string>();
  if (event.request?.host !== undefined && event.request.host !== '') hosts.add(event.request.host);
  if (event.target?.url !== undefined) {
    try {
      hosts.add(new URL(event.target.url).host);
    } catch {
      // no usable host in the URL
    }
  }
  return [...hosts];
}

function digestOf(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** Compares the bearer token with the secret in constant time (over their hashes, so lengths do not leak). */
export function authorized(header: string | undefined, secret: string): boolean {
  const token = /^Bearer\s+(.+)$/i.exec(header ?? '')?.[1]?.trim() ?? '';
  return timingSafeEqual(digestOf(token), digestOf(secret)) && token !== '';
}

/** The header of a sender that signs the body instead of sending the secret: `sha256=<hex of HMAC-SHA256(secret, body)>`. */
export const signatureHeader = 'x-restack-signature';

/** Whether the signature header is the body's HMAC-SHA256 under the secret; compared in constant time. */
export function signedBy(header: string | string[] | undefined, body: Buffer, secret: string): boolean {
  const hex = typeof header === 'string' ? /^sha256=([0-9a-f]{64})$/i.exec(header.trim())?.[1] : undefined;
  if (hex === undefined || secret === '') return false;
  return timingSafeEqual(Buffer.from(hex, 'hex'), createHmac('sha256', secret).update(body).digest());
}

/** The receiver's certificate and key, as files (a mounted kubernetes.io/tls Secret). */
export interface WebhookTls {
  certFile: string;
  keyFile: string;
  /** How often the files are looked at for a new version (default 10 s): a renewed certificate is served without a restart. */
  recheckMs?: number;
}

export interface WebhookOptions {
  /** The shared secret the registry sends as `Authorization: Bearer <secret>`, or signs the body with (signatureHeader). */
  secret: string;
  /** Serve https with this certificate; plain http without. */
  tls?: WebhookTls;
  /** Whether a key is watched (InputIndex.has); pushes to others are ignored. */
  isWatched: (key: string) => boolean;
  /**
   * Checks the pushed inputs now: `(keys, announced) => poller.triggerNow(keys, announced)`.
   * Runs after the answer is sent; `announced` is the digest each push named.
   */
  onPush: (keys: string[], announced: ReadonlyMap<string, string>) => Promise<unknown> | void;
  onError?: (error: unknown) => void;
  path?: string;
  aliases?: Record<string, string>;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
}

export interface WebhookReceiver {
  url: string;
  port: number;
  close: () => Promise<void>;
}

function answer(response: ServerResponse, status: number, message: string): void {
  response.writeHead(status, { 'content-type': 'text/plain; charset=utf-8' });
  response.end(`${message}\n`);
}

async function readBody(request: IncomingMessage): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

/** Handles one request: 401 neither the bearer secret nor a good signature, 400 bad body, 200 otherwise (even when nothing is watched). */
export async function handleNotification(request: IncomingMessage, response: ServerResponse, options: WebhookOptions): Promise<void> {
  const path = options.path ?? defaultWebhookPath;
  if (new URL(request.url ?? '/', 'http://receiver').pathname !== path) return answer(response, 404, `not found; notifications go to ${path}`);
  if (request.method !== 'POST') return answer(response, 405, 'notifications are POSTed');
  const bearer = authorized(request.headers.authorization, options.secret);
  const unauthorized = `missing or wrong bearer secret, and no good ${signatureHeader}: sha256=<HMAC-SHA256 of the body>`;
  if (!bearer && request.headers[signatureHeader] === undefined) return answer(response, 401, unauthorized);
  const body = await readBody(request);
  if (body === undefined) return answer(response, 413, `body above ${maxBodyBytes} bytes`);
  if (!bearer && !signedBy(request.headers[signatureHeader], body, options.secret)) return answer(response, 401, unauthorized);
  let pushed: Pushed;
  try {
    pushed = pushedInputs(parseNotification(body.toString('utf8')), options.aliases);
  } catch (error) {
    return answer(response, 400, error instanceof Error ? error.message : String(error));
  }
  const keys = pushed.keys.filter(options.isWatched);
  answer(response, 200, `${keys.length} watched input(s) to check`);
  if (keys.length === 0) return;
  try {
    await options.onPush(keys, new Map([...pushed.announced].filter(([key]) => keys.includes(key))));
  } catch (error) {
    options.onError?.(error);
  }
}

async function readTlsFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new NotificationError(`the webhook's TLS ${what} ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)}); mount the kubernetes.io/tls Secret there`);
  }
}

/**
 * An https server whose certificate and key are read again when either file changes (a Secret
 * the kubelet updated, a certificate cert-manager renewed). A pair that does not match, as while
 * the files are half rotated, keeps the previous one served until the next look.
 */
async function tlsServer(tls: WebhookTls, listener: RequestListener, onError: (error: unknown) => void): Promise<{ server: HttpsServer; stop: () => void }> {
  const read = async () => ({ cert: await readTlsFile(tls.certFile, 'certificate'), key: await readTlsFile(tls.keyFile, 'key') });
  const versions = async () => (await Promise.all([fileVersion(tls.certFile), fileVersion(tls.keyFile)])).join('\n');
  let served = await versions();
  let server: HttpsServer;
  try {
    server = createHttpsServer(await read(), listener);
  } catch (error) {
    if (error instanceof NotificationError) throw error;
    throw new NotificationError(`the webhook's certificate ${tls.certFile} and key ${tls.keyFile} are not a TLS identity: ${error instanceof Error ? error.message : String(error)}`);
  }
  const timer = setInterval(() => {
    void (async () => {
      const current = await versions();
      if (current === served) return;
      server.setSecureContext(await read());
      served = current;
    })().catch(onError);
  }, tls.recheckMs ?? 10_000);
  timer.unref();
  return { server, stop: () => clearInterval(timer) };
}

/** Starts the receiver for registry notifications: https with options.tls, else plain http. */
export async function startWebhook(options: WebhookOptions): Promise<WebhookReceiver> {
  if (options.secret === '') throw new NotificationError('the webhook secret is empty; set a shared secret and send it from the registry as Authorization: Bearer <secret>');
  const listener: RequestListener = (request, response) => {
    handleNotification(request, response, options).catch((error: unknown) => {
      options.onError?.(error);
      if (!response.headersSent) answer(response, 500, 'internal error');
    });
  };
  const secure = options.tls === undefined ? undefined : await tlsServer(options.tls, listener, (error) => options.onError?.(error));
  const server: Server | HttpsServer = secure?.server ?? createServer(listener);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `${secure === undefined ? 'http' : 'https'}://${host}:${port}${options.path ?? defaultWebhookPath}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        secure?.stop();
        server.closeAllConnections();
        server.close((error) => (error === undefined ? resolve() : reject(error)));
      }),
  };
}
