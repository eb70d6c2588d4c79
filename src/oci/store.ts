import type { Readable } from 'node:stream';
import type { Descriptor, FetchedManifest } from './types.ts';

/**
 * Where a blob's bytes come from when it is written: bytes in memory, or a stream opened on
 * demand (so a retry can open it again).
 */
export type BlobSource = Uint8Array | (() => Readable);

/** How a blob reached the target repository. */
export type BlobTransfer = 'present' | 'mounted' | 'uploaded';

/**
 * One interface over an OCI image layout directory and a registry (design.md, "Store").
 *
 * `repository` names a repository in a registry; a layout directory has one namespace and
 * ignores it. `reference` is a tag (a ref name in a layout) or a digest. Every read is verified
 * against its digest; every write is by digest, and only `tag` (or `putManifest` given a tag, the
 * last write of an image) moves a name.
 */
export interface Store {
  /** For messages: `oci:DIR` or `docker://host`. */
  readonly location: string;

  /** The descriptor (digest, media type, size) a tag or digest points at; HEAD-first on registries. */
  resolve(repository: string, reference: string): Promise<Descriptor>;
  /** Reads a manifest or index, verified when fetched by digest and returned with its exact bytes. */
  getManifest(repository: string, reference: string): Promise<FetchedManifest>;
  /** Reads a whole blob (configs, small layers), verified. */
  readBlob(repository: string, descriptor: Descriptor): Promise<Uint8Array>;
  /** Streams a blob; the stream errors at its end if the bytes do not match the descriptor. */
  openBlob(repository: string, descriptor: Descriptor): Promise<Readable>;
  hasBlob(repository: string, descriptor: Descriptor): Promise<boolean>;

  /** Writes a blob unless present. The source must hash to the descriptor's digest. */
  putBlob(repository: string, descriptor: Descriptor, source: BlobSource): Promise<BlobTransfer>;
  /**
   * Makes a blob of `fromRepository` in this same store available in `repository` without
   * sending its bytes where the backend allows; falls back to a copy only when it must.
   */
  mountBlob(repository: string, descriptor: Descriptor, fromRepository: string): Promise<BlobTransfer>;
  /**
   * Writes manifest or index bytes by digest; returns their descriptor. Blobs (and an index's
   * children) must exist first. With `tag`, the same write also points the tag at it, in one step
   * where the backend has one (a registry's PUT by tag stores the manifest and moves the tag
   * together, refusing a manifest whose blobs are missing): the last write of an image.
   */
  putManifest(repository: string, bytes: Uint8Array, mediaType: string, tag?: string): Promise<Descriptor>;
  /** Points a tag at a manifest that is already stored. The last step of every write. */
  tag(repository: string, tag: string, descriptor: Descriptor): Promise<void>;
  listTags(repository: string): Promise<string[]>;
}
