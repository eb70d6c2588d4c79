/**
 * The physical limit of a fan-out, measured beside the engine: a raw-HTTP client that does only
 * what any swap of one layer must do on a registry, and nothing else (no provenance, no checks,
 * no retries, no history): per image, GET the manifest, GET the config, mount the new layer from
 * the dependency's repository, upload the new config (POST then PUT) and PUT the manifest by tag.
 * Six requests an image.
 */
import { createHash } from 'node:crypto';
import { eachLimited } from './limit.ts';

export interface RawLayerSwap {
  /** The layer replaced, and its diff_id in the config. */
  from: { digest: string; diffId: string };
  /** The layer put in its place, and the repository it is mounted from. */
  to: { digest: string; size: number; mediaType: string; diffId: string; repository: string };
}

const ociManifest = 'application/vnd.oci.image.manifest.v1+json';

function sha256(bytes: Uint8Array): string {
  return `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
}

/** One registry over plain http, counting the requests it sends. */
export class RawRegistry {
  readonly #base: string;
  requests = 0;

  constructor(baseUrl: string) {
    this.#base = baseUrl;
  }

  async #call(method: string, path: string, expect: number, init: { body?: Uint8Array; headers?: Record<string, string> } = {}): Promise<Response> {
    this.requests++;
    const url = path.startsWith('http') ? path : `${this.#base}${path}`;
    const response = await fetch(url, { method, ...init });
    if (response.status !== expect) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
    return response;
  }

  async getManifest(repository: string, tag: string): Promise<Uint8Array> {
    const response = await this.#call('GET', `/v2/${repository}/manifests/${tag}`, 200, { headers: { accept: ociManifest } });
    return new Uint8Array(await response.arrayBuffer());
  }

  async putManifest(repository: string, tag: string, bytes: Uint8Array): Promise<void> {
    const response = await this.#call('PUT', `/v2/${repository}/manifests/${tag}`, 201, { body: bytes, headers: { 'content-type': ociManifest } });
    await response.arrayBuffer();
  }

  /** One image's swap: the six requests. */
  async swapLayer(repository: string, tag: string, swap: RawLayerSwap): Promise<void> {
    const manifest = JSON.parse(Buffer.from(await this.getManifest(repository, tag)).toString('utf8')) as {
      config: { digest: string; size: number; mediaType: string };
      layers: { digest: string; size: number; mediaType: string }[];
    };
    const config = (await (await this.#call('GET', `/v2/${repository}/blobs/${manifest.config.digest}`, 200)).json()) as { rootfs: { diff_ids: string[] } };
    const mount = await this.#call('POST', `/v2/${repository}/blobs/uploads/?mount=${swap.to.digest}&from=${swap.to.repository}`, 201);
    await mount.arrayBuffer();
    config.rootfs.diff_ids = config.rootfs.diff_ids.map((id) => (id === swap.from.diffId ? swap.to.diffId : id));
    const configBytes = new TextEncoder().encode(JSON.stringify(config));
    const configDigest = sha256(configBytes);
    const session = await this.#call('POST', `/v2/${repository}/blobs/uploads/`, 202);
    await session.arrayBuffer();
    const location = new URL(session.headers.get('location') ?? '', this.#base);
    location.searchParams.set('digest', configDigest);
    const put = await this.#call('PUT', location.href, 201, { body: configBytes, headers: { 'content-type': 'application/octet-stream' } });
    await put.arrayBuffer();
    manifest.config = { ...manifest.config, digest: configDigest, size: configBytes.length };
    manifest.layers = manifest.layers.map((layer) => (layer.digest === swap.from.digest ? { mediaType: swap.to.mediaType, digest: swap.to.digest, size: swap.to.size } : layer));
    await this.putManifest(repository, tag, new TextEncoder().encode(JSON.stringify(manifest)));
  }
}

/** Swaps one layer in `<repository>:<tag>` for every repository, `workers` at a time; answers the requests sent. */
export async function rawFanOut(registry: RawRegistry, repositories: readonly string[], tag: string, swap: RawLayerSwap, workers: number): Promise<number> {
  const before = registry.requests;
  await eachLimited(repositories, workers, (repository) => registry.swapLayer(repository, tag, swap));
  return registry.requests - before;
}
