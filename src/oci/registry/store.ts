import type { Readable } from 'node:stream';
import { blobChunks } from '../blob-source.ts';
import { assertDigest, digestMismatchError, isDigest, sha256Digest } from '../digest.ts';
import { OciError } from '../errors.ts';
import { assertManifestSize, manifestTooLarge, maxManifestBytes, parseManifest, rejectSchema1 } from '../manifest.ts';
import { manifestAcceptTypes } from '../mediatypes.ts';
import type { BlobSource, BlobTransfer, Store } from '../store.ts';
import type { Descriptor, FetchedManifest } from '../types.ts';
import { sizeMismatch, verifyBytes, verifyingStream } from '../verify-stream.ts';
import type { ConcurrencyBounds } from './adaptive-limit.ts';
import { Authenticator } from './auth.ts';
import { RegistryClient } from './client.ts';
import { catalogScope, type Scope } from './scope.ts';
import { credentialsFromEnvironment, type CredentialProvider } from './credential-provider.ts';
import { HttpTransport } from './http.ts';
import type { RetryOptions } from './retry.ts';
import { RegistryStats } from './stats.ts';
import { finishUpload, startUpload, type ChunkSource, type UploadOptions, type UploadStart, type UploadTarget } from './upload.ts';
import { isLoopbackHost, nextLink } from './urls.ts';

export interface RegistryStoreOptions {
  /** Plain http. Default: true for loopback hosts (127.x, localhost, [::1]), false otherwise. */
  insecure?: boolean;
  /** Default: docker config files named by the environment (REGISTRY_AUTH_FILE, DOCKER_CONFIG, ~/.docker). */
  credentials?: CredentialProvider;
  /** Requests in flight at once against this registry: starts at `initial` (8), adapts between `min` (1) and `max` (32) to its answers. */
  concurrency?: Partial<ConcurrencyBounds>;
  retry?: RetryOptions;
  /** Blobs above this size are uploaded in PATCH chunks of `chunkSize` bytes. */
  chunkedUploadThreshold?: number;
  chunkSize?: number;
  /** Tags asked for per page (`?n=`); the registry's own page size when unset. */
  tagPageSize?: number;
  /** How retries wait; tests record the waits instead of trusting a clock. */
  sleep?: (ms: number) => Promise<void>;
}

const mebibyte = 1024 * 1024;
const acceptManifests = { accept: manifestAcceptTypes.join(', ') };
/** Manifests written or read lately, so that moving a tag does not fetch them again. */
const manifestCacheSize = 64;

function mediaTypeOf(headers: Headers): string | undefined {
  return headers.get('content-type')?.split(';')[0]?.trim() || undefined;
}

/**
 * A Store over one registry host, speaking the distribution API v1.1 (oci.md). Counts every
 * request and body byte in `stats`.
 */
/** Answers after which an upload session is unusable but a new one may succeed. */
const sessionFailures = new Set<string>(['BLOB_UPLOAD_UNKNOWN', 'BLOB_UPLOAD_INVALID', 'RANGE_INVALID', 'REGISTRY_ERROR', 'UNREACHABLE']);
const uploadSessions = 3;

/** Blobs up to this size are uploaded without asking whether the registry has them. */
const smallBlobBytes = 64 * 1024;

export class RegistryStore implements Store {
  readonly location: string;
  readonly registry: string;
  readonly stats = new RegistryStats();
  readonly #client: RegistryClient;
  readonly #upload: UploadOptions;
  readonly #tagPageSize: number | undefined;
  readonly #manifests = new Map<string, Uint8Array>();
  /**
   * Whether the registry stores a small blob sent whole in the POST that opens its upload
   * (`?digest=`, one request instead of two): unknown until its first answer.
   */
  #monolithic: boolean | undefined;

  constructor(registry: string, options: RegistryStoreOptions = {}) {
    this.registry = registry;
    this.location = `docker://${registry}`;
    const insecure = options.insecure ?? isLoopbackHost(registry);
    const base = new URL(`${insecure ? 'http' : 'https'}://${registry}`);
    const transport = new HttpTransport({
      stats: this.stats,
      ...(options.retry === undefined ? {} : { retry: options.retry }),
      ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
      ...(options.sleep === undefined ? {} : { sleep: options.sleep }),
    });
    const auth = new Authenticator(registry, base, transport, options.credentials ?? credentialsFromEnvironment());
    this.#client = new RegistryClient(registry, base, transport, auth);
    this.#upload = { chunkedThreshold: options.chunkedUploadThreshold ?? 64 * mebibyte, chunkSize: options.chunkSize ?? 16 * mebibyte };
    this.#tagPageSize = options.tagPageSize;
  }

  #subject(repository: string, reference?: string): string {
    const suffix = reference === undefined ? '' : isDigest(reference) ? `@${reference}` : `:${reference}`;
    return `${this.location}/${repository}${suffix}`;
  }

  #remember(digest: string, bytes: Uint8Array): void {
    this.#manifests.delete(digest);
    this.#manifests.set(digest, bytes);
    if (this.#manifests.size > manifestCacheSize) this.#manifests.delete(this.#manifests.keys().next().value as string);
  }

  /** What a HEAD or GET of a manifest sends: every manifest type in Accept, pull scope. */
  #manifestRead(repository: string, reference: string, subject: string) {
    return {
      url: `/v2/${repository}/manifests/${reference}`,
      headers: acceptManifests,
      scopes: [pull(repository)],
      subject,
      expect: [200],
      notFound: 'MANIFEST_UNKNOWN' as const,
      read: 'buffer' as const,
    };
  }

  async resolve(repository: string, reference: string): Promise<Descriptor> {
    const subject = this.#subject(repository, reference);
    const response = await this.#client.call({ ...this.#manifestRead(repository, reference, subject), method: 'HEAD' });
    const digest = response.headers.get('docker-content-digest');
    const mediaType = mediaTypeOf(response.headers);
    const size = Number(response.headers.get('content-length') ?? Number.NaN);
    rejectSchema1(mediaType, subject);
    // Registries that do not answer HEAD fully are asked with a GET.
    if (digest === null || !isDigest(digest) || mediaType === undefined || !Number.isInteger(size)) return (await this.getManifest(repository, reference)).descriptor;
    if (isDigest(reference) && digest !== reference) throw digestMismatchError(subject, reference, digest);
    assertManifestSize(size, subject);
    return { mediaType, digest, size };
  }

  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    const subject = this.#subject(repository, reference);
    const response = await this.#client.call({
      ...this.#manifestRead(repository, reference, subject),
      method: 'GET',
      maxBytes: maxManifestBytes,
      tooLarge: (size) => manifestTooLarge(size, subject),
    });
    const bytes = response.body;
    // Schema1 first: its Docker-Content-Digest covers the payload without signatures, never the bytes.
    rejectSchema1(mediaTypeOf(response.headers), subject);
    const digest = sha256Digest(bytes);
    const announced = response.headers.get('docker-content-digest');
    if (isDigest(reference) && digest !== reference) throw digestMismatchError(subject, reference, digest);
    if (announced !== null && isDigest(announced) && announced !== digest) throw digestMismatchError(subject, announced, digest);
    const { mediaType, manifest } = parseManifest(bytes, mediaTypeOf(response.headers), subject);
    this.#remember(digest, bytes);
    return { descriptor: { mediaType, digest, size: bytes.length }, bytes, manifest };
  }

  async #getBlob(repository: string, descriptor: Descriptor, read: 'buffer' | 'stream') {
    assertDigest(descriptor.digest, 'blob descriptor');
    const subject = this.#subject(repository, descriptor.digest);
    return this.#client.call({
      method: 'GET',
      url: `/v2/${repository}/blobs/${descriptor.digest}`,
      scopes: [pull(repository)],
      subject,
      expect: [200],
      notFound: 'BLOB_UNKNOWN',
      read,
      bodyKind: 'blob',
      maxBytes: descriptor.size,
      tooLarge: (size) => sizeMismatch(subject, descriptor.size, size),
    });
  }

  async readBlob(repository: string, descriptor: Descriptor): Promise<Uint8Array> {
    const response = await this.#getBlob(repository, descriptor, 'buffer');
    verifyBytes(response.body, descriptor, this.#subject(repository, descriptor.digest));
    return response.body;
  }

  async openBlob(repository: string, descriptor: Descriptor): Promise<Readable> {
    const subject = this.#subject(repository, descriptor.digest);
    const response = await this.#getBlob(repository, descriptor, 'stream');
    const verifier = verifyingStream(descriptor, subject);
    const body = response.stream;
    if (body === undefined) {
      verifier.end();
      return verifier;
    }
    let received = 0;
    body.on('data', (chunk: Uint8Array) => (received += chunk.length));
    // A connection cut mid-body is a truncated blob: say so rather than "terminated".
    body.on('error', () => verifier.destroy(sizeMismatch(subject, descriptor.size, received)));
    return body.pipe(verifier);
  }

  async hasBlob(repository: string, descriptor: Descriptor): Promise<boolean> {
    return this.#hasBlob(repository, descriptor, pull(repository));
  }

  /** Before a write the push token is asked for right away, so one token serves the check and the upload. */
  async #hasBlob(repository: string, descriptor: Descriptor, scope: Scope): Promise<boolean> {
    assertDigest(descriptor.digest, 'blob descriptor');
    const response = await this.#client.call({
      method: 'HEAD',
      url: `/v2/${repository}/blobs/${descriptor.digest}`,
      scopes: [scope],
      subject: this.#subject(repository, descriptor.digest),
      expect: [200, 404],
      read: 'buffer',
    });
    return response.status === 200;
  }

  #target(repository: string, extra: Scope[] = []): UploadTarget {
    return { repository, subject: this.#subject(repository), scopes: [pushPull(repository), ...extra] };
  }

  async putBlob(repository: string, descriptor: Descriptor, source: BlobSource): Promise<BlobTransfer> {
    assertDigest(descriptor.digest, 'blob descriptor');
    if (source instanceof Uint8Array) verifyBytes(source, descriptor, `blob ${descriptor.digest} to write to ${this.#subject(repository)}`);
    // A small blob (a config) costs two requests to upload and one more to check first: just upload it.
    const checkFirst = !(source instanceof Uint8Array) || source.length > smallBlobBytes;
    if (checkFirst && (await this.#hasBlob(repository, descriptor, pushPull(repository)))) return 'present';
    const chunks: ChunkSource = source instanceof Uint8Array ? source : () => blobChunks(source);
    return this.#uploadInSessions(this.#target(repository), descriptor, chunks);
  }

  /**
   * Opens an upload session (asking to mount when `mountFrom` is given) and sends the blob. A
   * PATCH or closing PUT retried at a Location the registry no longer honours (its session is
   * gone, or an earlier try was half applied) fails the session, not the blob: the whole blob is
   * sent again in a new session, as go-containerregistry does, a few times at most.
   */
  async #uploadInSessions(target: UploadTarget, descriptor: Descriptor, chunks: ChunkSource, mountFrom?: string): Promise<BlobTransfer> {
    for (let session = 1; ; session++) {
      const monolithic = mountFrom === undefined && this.#monolithic !== false && chunks instanceof Uint8Array && chunks.length <= smallBlobBytes;
      const start: UploadStart | undefined =
        mountFrom !== undefined ? { mount: { digest: descriptor.digest, from: mountFrom } } : monolithic ? { monolithic: { digest: descriptor.digest, bytes: chunks } } : undefined;
      const { complete, location } = await startUpload(this.#client, target, start);
      if (complete) return mountFrom === undefined ? 'uploaded' : 'mounted';
      // The registry ignored the body and opened a session (distribution 2.8 does): the blob goes into it, and later uploads do not send it twice.
      if (monolithic) this.#monolithic = false;
      try {
        await finishUpload(this.#client, location, descriptor, chunks, target, this.#upload);
        return 'uploaded';
      } catch (error) {
        if (session >= uploadSessions || !(error instanceof OciError) || !sessionFailures.has(error.code)) throw error;
        this.stats.retries++;
      }
    }
  }

  /**
   * Asks the registry to link the blob from another repository (no bytes sent). A registry
   * that declines opens an ordinary upload instead: the bytes are then streamed from the
   * source repository into it.
   */
  async mountBlob(repository: string, descriptor: Descriptor, fromRepository: string): Promise<BlobTransfer> {
    assertDigest(descriptor.digest, 'blob descriptor');
    if (fromRepository === repository) {
      if (await this.hasBlob(repository, descriptor)) return 'present';
      throw new OciError('BLOB_UNKNOWN', `${this.#subject(repository, descriptor.digest)}: blob to mount is not in the repository`, 'write the blob first');
    }
    const openSource = () => this.openBlob(fromRepository, descriptor);
    const copy = async function* (): AsyncGenerator<Uint8Array> {
      yield* await openSource();
    };
    return this.#uploadInSessions(this.#target(repository, [pull(fromRepository)]), descriptor, copy, fromRepository);
  }

  async putManifest(repository: string, bytes: Uint8Array, mediaType: string, tag?: string): Promise<Descriptor> {
    const digest = sha256Digest(bytes);
    const subject = this.#subject(repository, tag ?? digest);
    const { mediaType: declared } = parseManifest(bytes, mediaType, subject);
    if (declared !== mediaType) {
      throw new OciError('MANIFEST_INVALID', `${subject}: its mediaType field says "${declared}" but it was written as "${mediaType}"`, 'write the manifest with the media type its body declares');
    }
    await this.#putManifestAt(repository, tag ?? digest, bytes, mediaType, subject);
    this.#remember(digest, bytes);
    return { mediaType, digest, size: bytes.length };
  }

  async #putManifestAt(repository: string, reference: string, bytes: Uint8Array, mediaType: string, subject: string): Promise<void> {
    const response = await this.#client.call({
      method: 'PUT',
      url: `/v2/${repository}/manifests/${reference}`,
      headers: { 'content-type': mediaType },
      body: bytes,
      scopes: [pushPull(repository)],
      subject,
      expect: [201],
      read: 'buffer',
    });
    const stored = response.headers.get('docker-content-digest');
    const digest = sha256Digest(bytes);
    if (stored !== null && isDigest(stored) && stored !== digest) throw digestMismatchError(subject, digest, stored);
  }

  async tag(repository: string, tag: string, descriptor: Descriptor): Promise<void> {
    assertDigest(descriptor.digest, 'manifest descriptor');
    const bytes = this.#manifests.get(descriptor.digest) ?? (await this.getManifest(repository, descriptor.digest)).bytes;
    await this.#putManifestAt(repository, tag, bytes, descriptor.mediaType, this.#subject(repository, tag));
  }

  async listTags(repository: string): Promise<string[]> {
    const tags: string[] = [];
    let url: URL | string | undefined = `/v2/${repository}/tags/list${this.#tagPageSize === undefined ? '' : `?n=${this.#tagPageSize}`}`;
    while (url !== undefined) {
      const response = await this.#client.call({
        method: 'GET',
        url,
        scopes: [pull(repository)],
        subject: this.#subject(repository),
        expect: [200, 404],
        read: 'buffer',
      });
      // A repository nobody has pushed to has no tags.
      if (response.status === 404) return [];
      const page = JSON.parse(Buffer.from(response.body).toString('utf8')) as { tags?: string[] | null };
      tags.push(...(page.tags ?? []));
      url = nextLink(response.headers.get('link'), response.url);
    }
    // Registries page in storage order (distribution 2.8 does not sort): one order for every caller.
    return tags.sort();
  }

  /**
   * Every repository the registry lists (`/v2/_catalog`, paged), asking token services for
   * `registry:catalog:*`. Registries may refuse or limit the catalog.
   */
  async listRepositories(): Promise<string[]> {
    const repositories: string[] = [];
    let url: URL | string | undefined = `/v2/_catalog${this.#tagPageSize === undefined ? '' : `?n=${this.#tagPageSize}`}`;
    while (url !== undefined) {
      const response = await this.#client.call({ method: 'GET', url, scopes: [catalogScope], subject: `${this.location} catalog`, expect: [200], read: 'buffer' });
      const page = JSON.parse(Buffer.from(response.body).toString('utf8')) as { repositories?: string[] | null };
      repositories.push(...(page.repositories ?? []));
      url = nextLink(response.headers.get('link'), response.url);
    }
    return repositories.sort();
  }
}

function pull(repository: string): Scope {
  return { repository, actions: ['pull'] };
}

function pushPull(repository: string): Scope {
  return { repository, actions: ['pull', 'push'] };
}
