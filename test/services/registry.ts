/**
 * A real OCI registry for tests: Debian's `docker-registry` (distribution 2.8) on a free
 * loopback port, filesystem storage in a temp dir, deletes enabled; optionally with htpasswd
 * (Basic) auth, token auth (see token-server.ts) and notification endpoints.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { freeLoopbackPort, requireProgram, spawnService, waitUntilReady } from './service.ts';

export { SkipError, startOrSkip } from './service.ts';

export interface NotificationEndpoint {
  name: string;
  url: string;
  headers?: Record<string, string[]>;
  timeout?: string;
  threshold?: number;
  backoff?: string;
  ignoredmediatypes?: string[];
}

export interface RegistryOptions {
  /** user -> password; turns on Basic auth (passwords are stored bcrypt-hashed by `htpasswd -B`). */
  htpasswd?: Record<string, string>;
  /** Bearer token auth against a token service (see token-server.ts). */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  notifications?: NotificationEndpoint[];
  /** Answer with relative Location headers (`http.relativeurls`). */
  relativeUrls?: boolean;
  /** Where the registry's storage lives (default: the system temp directory); benchmarks use tmpfs. */
  parentDirectory?: string;
}

export interface RunningRegistry {
  /** `127.0.0.1:PORT`, as in image references. */
  host: string;
  url: string;
  /** The storage root. */
  storage: string;
  logs: () => string;
  stop: () => Promise<void>;
}

async function htpasswdFile(users: Record<string, string>, path: string): Promise<void> {
  const htpasswd = await requireProgram('htpasswd', 'apache2-utils');
  const lines: string[] = [];
  for (const [user, password] of Object.entries(users)) {
    lines.push((await execa(htpasswd, ['-Bbn', user, password])).stdout.trim());
  }
  await writeFile(path, `${lines.join('\n')}\n`);
}

async function writeConfig(dir: string, port: number, options: RegistryOptions): Promise<string> {
  const config: Record<string, unknown> = {
    version: 0.1,
    log: { level: 'warn', accesslog: { disabled: true } },
    storage: { filesystem: { rootdirectory: join(dir, 'storage') }, delete: { enabled: true }, cache: { blobdescriptor: 'inmemory' } },
    http: { addr: `127.0.0.1:${port}`, relativeurls: options.relativeUrls ?? false },
  };
  if (options.htpasswd !== undefined) {
    const path = join(dir, 'htpasswd');
    await htpasswdFile(options.htpasswd, path);
    config['auth'] = { htpasswd: { realm: 'restack-test', path } };
  } else if (options.token !== undefined) {
    const { realm, service, issuer, rootCertBundle } = options.token;
    config['auth'] = { token: { realm, service, issuer, rootcertbundle: rootCertBundle } };
  }
  if (options.notifications !== undefined) config['notifications'] = { endpoints: options.notifications };
  const path = join(dir, 'config.yml');
  await writeFile(path, stringify(config));
  return path;
}

export async function startRegistry(options: RegistryOptions = {}): Promise<RunningRegistry> {
  const program = await requireProgram('docker-registry', 'docker-registry');
  const dir = await mkdtemp(join(options.parentDirectory ?? tmpdir(), 'restack-registry-'));
  // A port found free may be taken before the registry binds it: try a few.
  for (let attempt = 0; ; attempt++) {
    const port = await freeLoopbackPort();
    const config = await writeConfig(dir, port, options);
    const service = spawnService(program, ['serve', config]);
    const url = `http://127.0.0.1:${port}`;
    try {
      await waitUntilReady('docker-registry', service, async () => {
        const response = await fetch(`${url}/v2/`);
        await response.arrayBuffer();
        return response.status === 200 || response.status === 401;
      });
    } catch (error) {
      if (attempt < 3 && /address already in use/.test(service.output())) continue;
      await rm(dir, { recursive: true, force: true });
      throw error;
    }
    return {
      host: `127.0.0.1:${port}`,
      url,
      storage: join(dir, 'storage'),
      logs: service.output,
      stop: async () => {
        await service.stop();
        await rm(dir, { recursive: true, force: true });
      },
    };
  }
}
