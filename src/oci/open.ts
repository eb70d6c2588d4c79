import { OciError } from './errors.ts';
import { LayoutStore } from './layout.ts';
import { isImageManifestType, MediaType } from './mediatypes.ts';
import { choosePlatform, defaultPlatform } from './platform.ts';
import type { ImageReference } from './reference.ts';
import { credentialsFromEnvironment, credentialsFromFile, type CredentialProvider } from './registry/credential-provider.ts';
import { RegistryStore, type RegistryStoreOptions } from './registry/store.ts';
import type { Store } from './store.ts';
import { imageConfigSchema, isIndex, type Descriptor, type ImageConfig, type ImageManifest, type Platform, type ResolvedImage } from './types.ts';

export interface OpenStoreOptions {
  /** Plain http for registries (loopback registries use it anyway). */
  insecure?: boolean;
  /** A docker config.json to take registry credentials from, instead of the default locations. */
  authFile?: string;
  /** Takes precedence over `authFile`. */
  credentials?: CredentialProvider;
  /** Further registry settings (retries, concurrency, chunking). */
  registry?: Omit<RegistryStoreOptions, 'insecure' | 'credentials'>;
  /** Where opened registry stores are kept for reuse; a process-wide cache by default. */
  cache?: Map<string, RegistryStore>;
}

export interface OpenedStore {
  store: Store;
  /** The repository within the store ('' for a layout, which has one namespace). */
  repository: string;
  /** The digest when the reference has one, else its tag. */
  reference: string;
}

const sharedRegistryStores = new Map<string, RegistryStore>();

/**
 * Opens the store a reference lives in. Registry stores are shared per host and settings, so
 * their bearer tokens and auth handshake serve every image of that registry.
 */
export function openStore(ref: ImageReference, options: OpenStoreOptions = {}): OpenedStore {
  const reference = ref.digest ?? ref.tag ?? 'latest';
  if (ref.transport === 'oci') return { store: new LayoutStore(ref.dir), repository: '', reference };
  const cache = options.cache ?? sharedRegistryStores;
  // Stores with their own credential provider are not shared: the provider is not comparable.
  const key = options.credentials === undefined ? JSON.stringify([ref.registry, options.insecure ?? null, options.authFile ?? null, options.registry ?? null]) : undefined;
  const cached = key === undefined ? undefined : cache.get(key);
  if (cached !== undefined) return { store: cached, repository: ref.repository, reference };
  const credentials = options.credentials ?? (options.authFile === undefined ? credentialsFromEnvironment() : credentialsFromFile(options.authFile));
  const store = new RegistryStore(ref.registry, {
    ...options.registry,
    credentials,
    ...(options.insecure === undefined ? {} : { insecure: options.insecure }),
  });
  if (key !== undefined) cache.set(key, store);
  return { store, repository: ref.repository, reference };
}

const configTypes = new Set<string>([MediaType.ociConfig, MediaType.dockerConfig]);

/** Reads and validates an image's config blob; `source` names the image in errors. */
export async function readConfig(store: Store, repository: string, manifest: ImageManifest, source: string): Promise<{ configBytes: Uint8Array; config: ImageConfig }> {
  const configBytes = await store.readBlob(repository, manifest.config);
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(configBytes).toString('utf8'));
  } catch (error) {
    throw new OciError('CONFIG_INVALID', `${source}: config ${manifest.config.digest} is not JSON`, undefined, { cause: error });
  }
  const parsed = imageConfigSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new OciError('CONFIG_INVALID', `${source}: config ${manifest.config.digest}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  return { configBytes, config: parsed.data };
}

/**
 * Reads one platform's image: the manifest (from an index, the entry for `platform`, by
 * default this host's linux platform, skipping attestations) and its parsed config.
 */
export async function readImage(store: Store, repository: string, reference: string, platform?: Platform): Promise<ResolvedImage> {
  const source = `${store.location}${repository === '' ? '' : `/${repository}`} ${reference}`;
  let fetched = await store.getManifest(repository, reference);
  let descriptor: Descriptor = fetched.descriptor;
  // An index may point at another index; two levels are plenty for real images.
  for (let depth = 0; isIndex(fetched.manifest); depth++) {
    if (depth === 2) throw new OciError('MANIFEST_UNSUPPORTED', `${source}: indexes nested more than two deep`);
    descriptor = choosePlatform(fetched.manifest.manifests, platform ?? defaultPlatform(), source);
    fetched = await store.getManifest(repository, descriptor.digest);
  }
  const manifest = fetched.manifest as ImageManifest;
  const mediaType = fetched.descriptor.mediaType;
  if (!isImageManifestType(mediaType)) {
    throw new OciError('MANIFEST_UNSUPPORTED', `${source}: ${mediaType} is not an image manifest`);
  }
  if (!configTypes.has(manifest.config.mediaType)) {
    throw new OciError(
      'MANIFEST_UNSUPPORTED',
      `${source}: config type "${manifest.config.mediaType}" is not a container image config (an artifact?)`,
      'restack works on container images (OCI or Docker schema2)',
    );
  }
  const { configBytes, config } = await readConfig(store, repository, manifest, source);
  return {
    manifestDescriptor: { ...descriptor, mediaType },
    manifest,
    manifestBytes: fetched.bytes,
    configBytes,
    config,
  };
}
