import { OciError } from './errors.ts';
import { isDigest } from './digest.ts';

/** An image in a registry: `docker://host[:port]/repo[:tag|@digest]`. */
export interface RegistryReference {
  transport: 'docker';
  /** Host as used for the API (Docker Hub is `registry-1.docker.io`). */
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

/** An image in an OCI image layout directory: `oci:DIR[:TAG]` (TAG is the ref name, `latest` by default). */
export interface LayoutReference {
  transport: 'oci';
  dir: string;
  tag?: string;
  digest?: string;
}

export type ImageReference = RegistryReference | LayoutReference;

export const dockerHubRegistry = 'registry-1.docker.io';
const repositoryPattern = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
const tagPattern = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;

function invalid(input: string, why: string, hint: string): OciError {
  return new OciError('REFERENCE_INVALID', `image reference "${input}": ${why}`, hint);
}

const referenceHint = 'use docker://host[:port]/repository[:tag|@sha256:...] or oci:DIR[:TAG]';

/** Splits `rest@digest`, checking the digest. */
function splitDigest(input: string, body: string): { rest: string; digest?: string } {
  const at = body.indexOf('@');
  if (at < 0) return { rest: body };
  const digest = body.slice(at + 1);
  if (!isDigest(digest)) throw invalid(input, `"${digest}" is not a sha256 digest`, referenceHint);
  return { rest: body.slice(0, at), digest };
}

/** Splits `name[:tag][@digest]`, careful that `host:port/` is not a tag. */
function splitTagAndDigest(input: string, body: string): { name: string; tag?: string; digest?: string } {
  const { rest, digest } = splitDigest(input, body);
  let name = rest;
  let tag: string | undefined;
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) {
    tag = name.slice(colon + 1);
    name = name.slice(0, colon);
    if (!tagPattern.test(tag)) throw invalid(input, `tag "${tag}" is not valid`, 'tags match [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}');
  }
  return { name, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

export function parseRegistryReference(input: string): RegistryReference {
  const body = input.startsWith('docker://') ? input.slice('docker://'.length) : input;
  if (body === '') throw invalid(input, 'nothing after docker://', referenceHint);
  const { name, tag, digest } = splitTagAndDigest(input, body);
  const slash = name.indexOf('/');
  const first = slash < 0 ? '' : name.slice(0, slash);
  const hasHost = first !== '' && (first.includes('.') || first.includes(':') || first === 'localhost');
  let registry = hasHost ? first : dockerHubRegistry;
  let repository = hasHost ? name.slice(slash + 1) : name;
  if (registry === 'docker.io' || registry === 'index.docker.io') registry = dockerHubRegistry;
  if (registry === dockerHubRegistry && !repository.includes('/')) repository = `library/${repository}`;
  if (!repositoryPattern.test(repository)) {
    throw invalid(input, `repository "${repository}" is not valid`, 'repository names are lowercase: [a-z0-9]+ separated by ".", "_", "__", "-" or "/"');
  }
  return {
    transport: 'docker',
    registry,
    repository,
    ...(tag === undefined && digest === undefined ? { tag: 'latest' } : {}),
    ...(tag === undefined ? {} : { tag }),
    ...(digest === undefined ? {} : { digest }),
  };
}

export function parseLayoutReference(input: string): LayoutReference {
  const body = input.slice('oci:'.length);
  if (body === '') throw invalid(input, 'no directory after oci:', referenceHint);
  const { rest, digest } = splitDigest(input, body);
  let dir = rest;
  let tag: string | undefined;
  const colon = dir.lastIndexOf(':');
  if (colon >= 0) {
    tag = dir.slice(colon + 1);
    dir = dir.slice(0, colon);
    if (tag === '') throw invalid(input, 'empty ref name after ":"', referenceHint);
  }
  if (dir === '') throw invalid(input, 'no directory after oci:', referenceHint);
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { transport: 'oci', dir, ...(tag === undefined ? {} : { tag }), ...(digest === undefined ? {} : { digest }) };
}

/** Parses a reference as stacker writes them; a bare `name:tag` is a registry reference. */
export function parseReference(input: string): ImageReference {
  const trimmed = input.trim();
  if (trimmed.startsWith('oci:')) return parseLayoutReference(trimmed);
  if (/^[a-z][a-z0-9+.-]*:\/\//.test(trimmed) && !trimmed.startsWith('docker://')) {
    throw invalid(input, `transport "${trimmed.split('://')[0]}" is not supported`, referenceHint);
  }
  return parseRegistryReference(trimmed);
}

/** The display form: Docker Hub images as `docker://docker.io/...`. */
export function formatReference(ref: ImageReference): string {
  const suffix = `${ref.tag === undefined ? '' : `:${ref.tag}`}${ref.digest === undefined ? '' : `@${ref.digest}`}`;
  if (ref.transport === 'oci') return `oci:${ref.dir}${suffix}`;
  const host = ref.registry === dockerHubRegistry ? 'docker.io' : ref.registry;
  return `docker://${host}/${ref.repository}${suffix}`;
}

/** The name a reference gives an image, without its digest: what two references of one input share. */
export function imageName(ref: ImageReference): string {
  const { digest: _digest, ...named } = ref;
  return formatReference(named);
}

/** Repository identity without tag or digest, for matching "the same image, another version". */
export function repositoryKey(ref: ImageReference): string {
  return ref.transport === 'oci' ? `oci:${ref.dir}:${ref.tag ?? ''}` : `docker://${ref.registry}/${ref.repository}`;
}

export function withDigest<T extends ImageReference>(ref: T, digest: string): T {
  return { ...ref, digest };
}
