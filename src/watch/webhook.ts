import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
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

export interface WebhookOptions {
  /** The shared secret the registry sends as `Authorization: Bearer <secret>`. */
  secret: string;
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

async function readBody(request: IncomingMessage): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBodyBytes) return undefined;
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Handles one request: 401 bad secret, 400 bad body, 200 otherwise (even when nothing is watched). */
export async function handleNotification(request: IncomingMessage, response: ServerResponse, options: WebhookOptions): Promise<void> {
  const path = options.path ?? defaultWebhookPath;
  if (new URL(request.url ?? '/', 'http://receiver').pathname !== path) return answer(response, 404, `not found; notifications go to ${path}`);
  if (request.method !== 'POST') return answer(response, 405, 'notifications are POSTed');
  if (!authorized(request.headers.authorization, options.secret)) return answer(response, 401, 'missing or wrong bearer secret');
  const body = await readBody(request);
  if (body === undefined) return answer(response, 413, `body above ${maxBodyBytes} bytes`);
  let pushed: Pushed;
  try {
    pushed = pushedInputs(parseNotification(body), options.aliases);
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

/** Starts the receiver (node:http) for registry notifications. */
export async function startWebhook(options: WebhookOptions): Promise<WebhookReceiver> {
  if (options.secret === '') throw new NotificationError('the webhook secret is empty; set a shared secret and send it from the registry as Authorization: Bearer <secret>');
  const server: Server = createServer((request, response) => {
    handleNotification(request, response, options).catch((error: unknown) => {
      options.onError?.(error);
      if (!response.headersSent) answer(response, 500, 'internal error');
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const { port, address } = server.address() as AddressInfo;
  const host = address.includes(':') ? `[${address}]` : address;
  return {
    url: `http://${host}:${port}${options.path ?? defaultWebhookPath}`,
    port,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error === undefined ? resolve() : reject(error)));
      }),
  };
}
