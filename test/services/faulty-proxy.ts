/**
 * An HTTP proxy on loopback in front of a registry that misbehaves on request: answer a status
 * (500, 429 with Retry-After, a fake manifest) without forwarding, reset the connection, cut a
 * body short, or substitute its bytes (a lying registry). Everything else passes through
 * untouched, Host header included, so the registry's absolute Locations point back at the proxy.
 */
import { createServer, request as forward, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault =
  /** Answer without forwarding. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string | Uint8Array }
  /** Reset the connection (TCP RST) without answering. */
  | { kind: 'reset' }
  /** Forward, then send the headers (with the original Content-Length) and only this many body bytes, and cut the connection. */
  | { kind: 'truncate'; keepBytes: number }
  /** Forward, then answer with other body bytes under the original headers (Content-Length adjusted). */
  | { kind: 'substitute'; body: (original: Buffer) => Buffer }
  /** Forward to another path (a registry that ignores `?mount=` is one that never saw it). */
  | { kind: 'rewrite'; path: (original: string) => string };

export interface FaultRule {
  method?: string;
  /** A substring of, or a pattern for, the request path and query. */
  path: string | RegExp;
  /** How many matching requests misbehave before the rule is spent; every one by default. */
  times?: number;
  fault: Fault;
}

export interface ProxiedRequest {
  method: string;
  path: string;
  /** The status answered, or the fault applied. */
  outcome: number | Fault['kind'];
}

export interface FaultyProxy {
  host: string;
  url: string;
  inject: (rule: FaultRule) => void;
  clear: () => void;
  /** Requests seen, in order. */
  requests: ProxiedRequest[];
  stop: () => Promise<void>;
}

function matches(rule: FaultRule, request: IncomingMessage): boolean {
  if (rule.method !== undefined && rule.method !== request.method) return false;
  const path = request.url ?? '';
  return typeof rule.path === 'string' ? path.includes(rule.path) : rule.path.test(path);
}

export async function startFaultyProxy(target: string): Promise<FaultyProxy> {
  const upstream = new URL(target);
  const rules: Array<FaultRule & { left: number }> = [];
  const requests: ProxiedRequest[] = [];

  const takeFault = (request: IncomingMessage): Fault | undefined => {
    const rule = rules.find((candidate) => candidate.left > 0 && matches(candidate, request));
    if (rule === undefined) return undefined;
    rule.left--;
    return rule.fault;
  };

  const handle = (request: IncomingMessage, response: ServerResponse) => {
    const method = request.method ?? 'GET';
    const path = request.url ?? '/';
    const fault = takeFault(request);
    const record = (outcome: ProxiedRequest['outcome']) => requests.push({ method, path, outcome });
    if (fault?.kind === 'reset') {
      record('reset');
      request.socket.resetAndDestroy();
      return;
    }
    if (fault?.kind === 'status') {
      record(fault.status);
      request.resume();
      const body = fault.body === undefined ? undefined : Buffer.from(fault.body);
      response.writeHead(fault.status, { ...fault.headers, ...(body === undefined ? {} : { 'content-length': String(body.length) }) });
      response.end(method === 'HEAD' ? undefined : body);
      return;
    }
    const upstreamPath = fault?.kind === 'rewrite' ? fault.path(path) : path;
    const outgoing = forward({ host: upstream.hostname, port: upstream.port, method, path: upstreamPath, headers: request.headers }, (answer) => {
      if (fault === undefined || fault.kind === 'rewrite' || method === 'HEAD') {
        record(fault?.kind === 'rewrite' ? 'rewrite' : (answer.statusCode ?? 0));
        response.writeHead(answer.statusCode ?? 502, answer.rawHeaders);
        answer.pipe(response);
        return;
      }
      const chunks: Buffer[] = [];
      answer.on('data', (chunk: Buffer) => chunks.push(chunk));
      answer.on('end', () => {
        const original = Buffer.concat(chunks);
        record(fault.kind);
        if (fault.kind === 'truncate') {
          response.writeHead(answer.statusCode ?? 502, { ...answer.headers, 'content-length': String(original.length) });
          response.write(original.subarray(0, fault.keepBytes), () => response.socket?.destroy());
        } else {
          const body = fault.body(original);
          response.writeHead(answer.statusCode ?? 502, { ...answer.headers, 'content-length': String(body.length) });
          response.end(body);
        }
      });
    });
    outgoing.on('error', (error) => {
      record(502);
      response.writeHead(502).end(String(error));
    });
    request.pipe(outgoing);
  };

  const server = createServer(handle);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}`,
    inject: (rule) => rules.push({ ...rule, left: rule.times ?? Number.POSITIVE_INFINITY }),
    clear: () => {
      rules.length = 0;
      requests.length = 0;
    },
    requests,
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
