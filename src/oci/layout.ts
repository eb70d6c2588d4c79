import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { link, mkdir, open, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join, resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import { blobChunks } from './blob-source.ts';
import { assertDigest, DigestingHasher, digestHex, digestMismatchError, isDigest, sha256Digest } from './digest.ts';
import { OciError } from './errors.ts';
import { withFileLock, type LockOptions } from './file-lock.ts';
import { parseManifest } from './manifest.ts';
import { MediaType } from './mediatypes.ts';
import type { BlobSource, BlobTransfer, Store } from './store.ts';
import { imageIndexSchema, isIndex, type Descriptor, type FetchedManifest, type ImageIndex } from './types.ts';
import { sizeMismatch, verifyBytes, verifyingStream } from './verify-stream.ts';

export const refNameAnnotation = 'org.opencontainers.image.ref.name';
const layoutMarker = JSON.stringify({ imageLayoutVersion: '1.0.0' });

export interface LayoutStoreOptions {
  lock?: LockOptions;
}

function withoutRefName(descriptor: Descriptor): Descriptor {
  const { annotations, ...rest } = descriptor;
  if (annotations === undefined) return descriptor;
  const { [refNameAnnotation]: _refName, ...others } = annotations;
  return Object.keys(others).length === 0 ? rest : { ...rest, annotations: others };
}

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException).code === 'ENOENT';
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch (error) {
    if (isMissing(error)) return false;
    throw error;
  }
}

function emptyIndex(): ImageIndex {
  return { schemaVersion: 2, mediaType: MediaType.ociIndex, manifests: [] };
}

/**
 * A Store over an OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/`).
 * Tags are `org.opencontainers.image.ref.name` annotations in `index.json`; the repository
 * argument is ignored. Blobs and `index.json` are written to a temporary file in the same
 * directory and renamed into place, and `index.json` changes under a lock that also excludes
 * other processes, so concurrent writers never leave a torn or lost update.
 */
export class LayoutStore implements Store {
  readonly location: string;
  readonly #dir: string;
  readonly #lockOptions: LockOptions;

  constructor(dir: string, options: LayoutStoreOptions = {}) {
    this.#dir = resolvePath(dir);
    this.location = `oci:${dir}`;
    this.#lockOptions = options.lock ?? {};
  }

  #blobPath(digest: string): string {
    return join(this.#dir, 'blobs', 'sha256', digestHex(digest));
  }

  #indexPath(): string {
    return join(this.#dir, 'index.json');
  }

  async #readIndex(): Promise<ImageIndex> {
    let text: string;
    try {
      text = await readFile(this.#indexPath(), 'utf8');
    } catch (error) {
      if (isMissing(error)) return emptyIndex();
      throw error;
    }
    let parsed;
    try {
      parsed = imageIndexSchema.safeParse(JSON.parse(text));
    } catch (error) {
      throw new OciError('LAYOUT_INVALID', `${this.location}: index.json is not valid JSON`, 'restore index.json or recreate the layout', { cause: error });
    }
    if (!parsed.success) {
      throw new OciError('LAYOUT_INVALID', `${this.location}: index.json is not an OCI image index: ${parsed.error.issues[0]?.message ?? ''}`, 'restore index.json or recreate the layout');
    }
    return parsed.data;
  }

  /** Writes a file by temp + rename in its own directory, synced first so a crash leaves old or new, never half. */
  async #writeAtomically(path: string, chunks: AsyncIterable<Uint8Array>, check?: (hasher: DigestingHasher) => void): Promise<void> {
    const temp = join(path, '..', `.tmp-${randomBytes(8).toString('hex')}`);
    const hasher = new DigestingHasher();
    const handle = await open(temp, 'wx');
    try {
      try {
        for await (const chunk of chunks) {
          hasher.update(chunk);
          await handle.write(chunk);
        }
        check?.(hasher);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, path);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  /** Creates the layout on first write; link() refuses to replace, so a racing writer's index.json survives. */
  async #ensureLayout(): Promise<void> {
    await mkdir(join(this.#dir, 'blobs', 'sha256'), { recursive: true });
    await this.#createIfAbsent(join(this.#dir, 'oci-layout'), layoutMarker);
    await this.#createIfAbsent(this.#indexPath(), JSON.stringify(emptyIndex()));
  }

  async #createIfAbsent(path: string, content: string): Promise<void> {
    if (await exists(path)) return;
    const temp = join(this.#dir, `.tmp-${randomBytes(8).toString('hex')}`);
    await writeFile(temp, content, { flag: 'wx' });
    try {
      await link(temp, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      await rm(temp, { force: true });
    }
  }

  #notFound(reference: string, known: string[]): OciError {
    const available = known.length === 0 ? 'the layout has no refs' : `available refs: ${known.join(', ')}`;
    return new OciError('MANIFEST_UNKNOWN', `${this.location}: no manifest "${reference}"`, available);
  }

  async resolve(_repository: string, reference: string): Promise<Descriptor> {
    const index = await this.#readIndex();
    if (isDigest(reference)) {
      const listed = index.manifests.find((entry) => entry.digest === reference);
      if (listed !== undefined) return withoutRefName(listed);
      const bytes = await this.#readExisting(reference, () => this.#notFound(reference, []));
      verifyBytes(bytes, { digest: reference, size: bytes.length }, `${this.location}@${reference}`);
      const { mediaType } = parseManifest(bytes, undefined, `${this.location}@${reference}`);
      return { mediaType, digest: reference, size: bytes.length };
    }
    const entry = index.manifests.find((candidate) => candidate.annotations?.[refNameAnnotation] === reference);
    if (entry === undefined) throw this.#notFound(reference, refNames(index));
    return withoutRefName(entry);
  }

  async #readExisting(digest: string, whenMissing: () => OciError): Promise<Uint8Array> {
    try {
      return await readFile(this.#blobPath(digest));
    } catch (error) {
      if (isMissing(error)) throw whenMissing();
      throw error;
    }
  }

  async getManifest(repository: string, reference: string): Promise<FetchedManifest> {
    const descriptor = await this.resolve(repository, reference);
    const source = `${this.location}@${descriptor.digest}`;
    const bytes = await this.#readExisting(descriptor.digest, () => new OciError('MANIFEST_UNKNOWN', `${source}: index.json names a manifest whose blob is missing`, 'the layout is incomplete; copy the image into it again'));
    verifyBytes(bytes, descriptor, source);
    const { mediaType, manifest } = parseManifest(bytes, descriptor.mediaType, source);
    return { descriptor: { ...descriptor, mediaType }, bytes, manifest };
  }

  #blobUnknown(descriptor: Descriptor): OciError {
    return new OciError('BLOB_UNKNOWN', `${this.location}: blob ${descriptor.digest} is not in the layout`, 'write the blob (or copy the whole image) into the layout first');
  }

  async readBlob(_repository: string, descriptor: Descriptor): Promise<Uint8Array> {
    assertDigest(descriptor.digest, 'blob descriptor');
    const bytes = await this.#readExisting(descriptor.digest, () => this.#blobUnknown(descriptor));
    verifyBytes(bytes, descriptor, `${this.location}@${descriptor.digest}`);
    return bytes;
  }

  async openBlob(_repository: string, descriptor: Descriptor): Promise<Readable> {
    assertDigest(descriptor.digest, 'blob descriptor');
    if (!(await this.hasBlob('', descriptor))) throw this.#blobUnknown(descriptor);
    const file = createReadStream(this.#blobPath(descriptor.digest));
    const verifier = verifyingStream(descriptor, `${this.location}@${descriptor.digest}`);
    file.on('error', (error) => verifier.destroy(error));
    return file.pipe(verifier);
  }

  async hasBlob(_repository: string, descriptor: Descriptor): Promise<boolean> {
    return exists(this.#blobPath(descriptor.digest));
  }

  async putBlob(_repository: string, descriptor: Descriptor, source: BlobSource): Promise<BlobTransfer> {
    assertDigest(descriptor.digest, 'blob descriptor');
    if (await this.hasBlob('', descriptor)) return 'present';
    await this.#ensureLayout();
    const what = `blob ${descriptor.digest} written to ${this.location}`;
    await this.#writeAtomically(this.#blobPath(descriptor.digest), blobChunks(source), (hasher) => {
      if (hasher.size !== descriptor.size) throw sizeMismatch(what, descriptor.size, hasher.size);
      const actual = hasher.digest();
      if (actual !== descriptor.digest) throw digestMismatchError(what, descriptor.digest, actual);
    });
    return 'uploaded';
  }

  /** One directory holds every repository's blobs: a blob is either here already or unknown. */
  async mountBlob(repository: string, descriptor: Descriptor, _fromRepository: string): Promise<BlobTransfer> {
    if (await this.hasBlob(repository, descriptor)) return 'present';
    throw this.#blobUnknown(descriptor);
  }

  async putManifest(repository: string, bytes: Uint8Array, mediaType: string, tag?: string): Promise<Descriptor> {
    const digest = sha256Digest(bytes);
    const source = `manifest ${digest} written to ${this.location}`;
    const { mediaType: declared, manifest } = parseManifest(bytes, mediaType, source);
    if (declared !== mediaType) {
      throw new OciError('MANIFEST_INVALID', `${source}: its mediaType field says "${declared}" but it was written as "${mediaType}"`, 'write the manifest with the media type its body declares');
    }
    const referenced = isIndex(manifest) ? manifest.manifests : [manifest.config, ...manifest.layers.filter((layer) => layer.urls === undefined)];
    for (const child of referenced) {
      if (!(await this.hasBlob('', child))) {
        throw new OciError('MANIFEST_BLOB_UNKNOWN', `${source}: it refers to ${child.digest} (${child.mediaType}), which is not in the layout`, 'write blobs and child manifests before the manifest that refers to them');
      }
    }
    const descriptor = { mediaType, digest, size: bytes.length };
    await this.putBlob('', descriptor, bytes);
    if (tag !== undefined) await this.tag(repository, tag, descriptor);
    return descriptor;
  }

  async tag(_repository: string, tag: string, descriptor: Descriptor): Promise<void> {
    if (!(await this.hasBlob('', descriptor))) {
      throw new OciError('MANIFEST_UNKNOWN', `${this.location}: cannot tag "${tag}": manifest ${descriptor.digest} is not in the layout`, 'write the manifest with putManifest before tagging it');
    }
    await this.#ensureLayout();
    await withFileLock(`${this.#indexPath()}.lock`, async () => {
      const index = await this.#readIndex();
      const base = withoutRefName(descriptor);
      const entry: Descriptor = { ...base, annotations: { ...base.annotations, [refNameAnnotation]: tag } };
      index.manifests = [...index.manifests.filter((candidate) => candidate.annotations?.[refNameAnnotation] !== tag), entry];
      await this.#writeAtomically(this.#indexPath(), blobChunks(Buffer.from(JSON.stringify(index))));
    }, this.#lockOptions);
  }

  async listTags(_repository: string): Promise<string[]> {
    return refNames(await this.#readIndex()).sort();
  }
}

function refNames(index: ImageIndex): string[] {
  return index.manifests.flatMap((entry) => {
    const name = entry.annotations?.[refNameAnnotation];
    return name === undefined ? [] : [name];
  });
}
