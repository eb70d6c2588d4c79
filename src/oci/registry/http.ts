import { Readable, Transform } from 'node:stream';
import type { ReadableStream as WebReadableStream } from 'node:stream/web';
import { setTimeout as delay } from 'node:timers/promises';
import { OciError } from '../errors.ts';
import { sizeMismatch } from '../verify-stream.ts';
import { backoffDelay, defaultRetry, describeNetworkError, isRetryableStatus, isTransientNetworkError, parseRetryAfter, type RetryOptions } from './retry.ts';
import { AdaptiveLimit, defaultConcurrency, type ConcurrencyBounds, type RequestOutcome } from './adaptive-limit.ts';
import type { BodyKind, RegistryStats } from './stats.ts';

/** A request body: bytes, or a function that produces the bytes again for every try. */
export type RequestBody = Uint8Array | (() => AsyncIterable<Uint8Array>);

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  /** Counts body bytes (both ways) as blob traffic or other traffic in the stats. */
  bodyKind?: BodyKind;
  /** `buffer` reads the answer inside the retry loop; `stream` hands it over after the headers. */
  read?: 'buffer' | 'stream';
  /** Buffered answers longer than this fail with `tooLarge` before or while reading. */
  maxBytes?: number;
  tooLarge?: (size: number) => Error;
  /** Names what is being asked in error messages (registry, repository, reference). */
  subject: string;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  /** The URL that answered (after redirects): relative Locations resolve against it. */
  url: string;
  /** The body, for `read: 'buffer'`. */
  body: Uint8Array;
  /** The body, for `read: 'stream'`. */
  stream: Readable | undefined;
}

export interface TransportOptions {
  retry?: RetryOptions;
  /** Requests in flight at once: starts at `initial`, adapts between `min` and `max` (adaptive-limit.ts). */
  concurrency?: Partial<ConcurrencyBounds>;
  stats: RegistryStats;
  sleep?: (ms: number) => Promise<void>;
  userAgent?: string;
}

/** A network failure worth another try, carrying how far the answer got. */
class Interrupted extends Error {
  readonly received: number;
  readonly expected: number | undefined;
  constructor(cause: unknown, received: number, expected: number | undefined) {
    super('connection interrupted', { cause });
    this.received = received;
    this.expected = expected;
  }
}

/** The OciError a request body raised (a source that does not match its digest), if that is why fetch failed. */
function bodyError(error: unknown): OciError | undefined {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    if (current instanceof OciError) return current;
    current = (current as { cause?: unknown }).cause;
  }
  return undefined;
}

function contentLength(headers: Headers): number | undefined {
  const value = headers.get('content-length');
  return value === null || !/^\d+$/.test(value) ? undefined : Number(value);
}

/**
 * fetch with what every registry call needs below authentication: a concurrency bound per
 * registry that adapts to its answers, retries with backoff and jitter on 5xx, 429 (honouring Retry-After) and
 * connection failures, and byte/request accounting.
 */
export class HttpTransport {
  readonly #retry: Required<RetryOptions>;
  readonly #slots: AdaptiveLimit;
  readonly #stats: RegistryStats;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #userAgent: string;

  constructor(options: TransportOptions) {
    this.#retry = { ...defaultRetry, ...options.retry };
    this.#stats = options.stats;
    const bounds = { ...defaultConcurrency, ...options.concurrency };
    // a `max` or `min` given alone moves the default start inside the bounds
    const initial = options.concurrency?.initial ?? Math.min(bounds.max, Math.max(bounds.min, bounds.initial));
    this.#slots = new AdaptiveLimit({ ...bounds, initial }, (limit) => (this.#stats.concurrencyLimit = limit));
    this.#sleep = options.sleep ?? ((ms) => delay(ms));
    this.#userAgent = options.userAgent ?? 'restack';
  }

  async send(request: HttpRequest): Promise<HttpResponse> {
    for (let attempt = 0; ; attempt++) {
      const last = attempt + 1 >= this.#retry.attempts;
      let waitMs: number;
      try {
        const response = await this.#once(request);
        const retryAfter = parseRetryAfter(response.headers.get('retry-after'));
        if (last || !isRetryableStatus(response.status) || (retryAfter ?? 0) > this.#retry.maxRetryAfterMs) return response;
        response.stream?.resume();
        waitMs = retryAfter ?? backoffDelay(attempt, this.#retry);
      } catch (error) {
        const fromBody = bodyError(error);
        if (fromBody !== undefined) throw fromBody;
        const transient = error instanceof Interrupted || isTransientNetworkError(error);
        // fetch reports network failures as TypeError('fetch failed'); anything else is a bug or an OciError to pass on.
        if (!transient && !(error instanceof TypeError && error.message === 'fetch failed')) throw error;
        if (last || !transient) throw this.#giveUp(request, error, attempt + 1);
        waitMs = backoffDelay(attempt, this.#retry);
      }
      this.#stats.retries++;
      await this.#sleep(waitMs);
    }
  }

  #giveUp(request: HttpRequest, error: unknown, tries: number): OciError {
    if (error instanceof Interrupted && error.expected !== undefined) return sizeMismatch(request.subject, error.expected, error.received);
    const reason = describeNetworkError(error instanceof Interrupted ? error.cause : error);
    return new OciError(
      'UNREACHABLE',
      `${request.subject}: ${request.method} ${request.url.origin} failed${tries > 1 ? ` after ${tries} tries` : ''} (${reason})`,
      'check that the registry is running and reachable; a plain-http registry needs the insecure option',
      { cause: error },
    );
  }

  #requestBody(request: HttpRequest): { body?: Uint8Array | WebReadableStream<Uint8Array> } {
    const kind = request.bodyKind ?? 'other';
    const body = request.body;
    if (body === undefined) return {};
    if (body instanceof Uint8Array) {
      this.#stats.countSent(kind, body.length);
      return { body };
    }
    const stats = this.#stats;
    async function* counted(): AsyncGenerator<Uint8Array> {
      for await (const chunk of (body as () => AsyncIterable<Uint8Array>)()) {
        stats.countSent(kind, chunk.length);
        yield chunk;
      }
    }
    return { body: ReadableStream.from(counted()) as WebReadableStream<Uint8Array> };
  }

  async #once(request: HttpRequest): Promise<HttpResponse> {
    const release = await this.#slots.acquire();
    let handedOver = false;
    let outcome: RequestOutcome = 'other';
    try {
      const { body } = this.#requestBody(request);
      const headers: Record<string, string> = { 'user-agent': this.#userAgent, ...request.headers };
      // fetch sends the length of a byte body itself; an explicit content-length header is refused
      // once the npm undici package (loaded by @kubernetes/client-node) is the global dispatcher
      this.#stats.countRequest(request.method);
      const response = await fetch(request.url, {
        method: request.method,
        headers,
        ...(body === undefined ? {} : { body: body as NonNullable<RequestInit['body']>, duplex: 'half' as const }),
        redirect: 'follow',
      });
      outcome = overloadStatuses.has(response.status) ? 'overloaded' : response.status < 500 ? 'ok' : 'other';
      const kind = request.bodyKind ?? 'other';
      const answer = { status: response.status, headers: response.headers, url: response.url || request.url.href };
      if (request.read === 'stream' && response.body !== null) {
        const counter = new Transform({
          transform: (chunk: Buffer, _encoding, callback) => {
            this.#stats.countReceived(kind, chunk.length);
            callback(null, chunk);
          },
        });
        const source = Readable.fromWeb(response.body as WebReadableStream<Uint8Array>);
        source.on('error', (error) => counter.destroy(error));
        handedOver = true;
        release(outcome);
        return { ...answer, body: new Uint8Array(), stream: source.pipe(counter) };
      }
      return { ...answer, body: await this.#readBody(request, response, kind), stream: undefined };
    } catch (error) {
      // a dropped or refused connection is the registry (or what is in front of it) overloaded
      if (error instanceof Interrupted || isTransientNetworkError(error)) outcome = 'overloaded';
      throw error;
    } finally {
      if (!handedOver) release(outcome);
    }
  }

  async #readBody(request: HttpRequest, response: Response, kind: BodyKind): Promise<Uint8Array> {
    if (!response.ok) return this.#readErrorBody(response, kind);
    // A HEAD answer has no body: its Content-Length is the size of what a GET would send.
    if (request.method === 'HEAD') return new Uint8Array();
    const expected = contentLength(response.headers);
    const limit = request.maxBytes ?? maxBodyBytes;
    if (expected !== undefined && expected > limit) {
      await response.body?.cancel();
      throw request.tooLarge?.(expected) ?? answerTooLarge(request, expected, limit);
    }
    const chunks: Uint8Array[] = [];
    let received = 0;
    if (response.body === null) return new Uint8Array();
    try {
      for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
        received += chunk.length;
        this.#stats.countReceived(kind, chunk.length);
        if (received > limit) {
          throw request.tooLarge?.(received) ?? answerTooLarge(request, received, limit);
        }
        chunks.push(chunk);
      }
    } catch (error) {
      if (isTransientNetworkError(error)) throw new Interrupted(error, received, expected);
      throw error;
    }
    return Buffer.concat(chunks);
  }

  /** At most maxErrorBodyBytes of an error answer: its JSON errors, never a body a server keeps sending. */
  async #readErrorBody(response: Response, kind: BodyKind): Promise<Uint8Array> {
    if (response.body === null) return new Uint8Array();
    const prefix = await readPrefix(response.body as AsyncIterable<Uint8Array>, maxErrorBodyBytes, (length) => this.#stats.countReceived(kind, length)).catch(() => new Uint8Array());
    await response.body.cancel().catch(() => undefined);
    return prefix;
  }
}

/** Answers that say the registry is overloaded: the concurrency limit halves. */
const overloadStatuses = new Set([429, 503]);

/** A buffered answer whose caller names no limit (a token, a tag list or catalog page) is refused beyond this. */
export const maxBodyBytes = 8 * 1024 * 1024;
/** An error answer is read this far at most: any registry's JSON errors fit. */
export const maxErrorBodyBytes = 64 * 1024;

function answerTooLarge(request: HttpRequest, size: number, limit: number): OciError {
  return new OciError(
    'REGISTRY_ERROR',
    `${request.subject}: ${request.method} ${request.url.pathname} answered at least ${size} bytes, more than the ${limit} such an answer may have`,
    'the registry, or something in front of it, answers far more than asked; check the registry address',
  );
}

/** The first `limit` bytes of a stream (fewer when it ends first); stops reading there. */
export async function readPrefix(stream: AsyncIterable<Uint8Array>, limit: number, count: (length: number) => void = () => {}): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let received = 0;
  for await (const chunk of stream) {
    count(chunk.length);
    chunks.push(chunk);
    received += chunk.length;
    if (received >= limit) break;
  }
  return Buffer.concat(chunks).subarray(0, limit);
}
