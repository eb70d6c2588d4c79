import { OciError, type OciErrorCode } from '../errors.ts';

/** The codes of the distribution spec that restack keeps as the registry said them. */
const registryCodes = new Set<OciErrorCode>([
  'BLOB_UNKNOWN',
  'BLOB_UPLOAD_INVALID',
  'BLOB_UPLOAD_UNKNOWN',
  'DIGEST_INVALID',
  'MANIFEST_BLOB_UNKNOWN',
  'MANIFEST_INVALID',
  'MANIFEST_UNKNOWN',
  'NAME_INVALID',
  'NAME_UNKNOWN',
  'SIZE_INVALID',
  'TAG_INVALID',
  'UNAUTHORIZED',
  'DENIED',
  'UNSUPPORTED',
  'TOOMANYREQUESTS',
  'RANGE_INVALID',
  'PAGINATION_NUMBER_INVALID',
]);

export function credentialsHint(registry: string): string {
  return `check the credentials for ${registry}: docker login / the auths entry in $REGISTRY_AUTH_FILE, $DOCKER_CONFIG/config.json or ~/.docker/config.json, or the pushSecretRef secret`;
}

function hintFor(code: OciErrorCode, registry: string): string | undefined {
  switch (code) {
    case 'UNAUTHORIZED':
      return credentialsHint(registry);
    case 'DENIED':
      return `the credentials for ${registry} are valid but lack permission for this repository; ask for push/pull rights`;
    case 'NAME_UNKNOWN':
      return 'the repository does not exist on this registry; check the name (Docker Hub names without a slash get library/)';
    case 'MANIFEST_UNKNOWN':
      return 'no such tag or digest in this repository; list its tags to see what exists';
    case 'MANIFEST_BLOB_UNKNOWN':
      return 'write (or mount) every blob the manifest refers to before the manifest';
    case 'TOOMANYREQUESTS':
      return 'the registry is rate limiting; wait, authenticate, or lower the concurrency';
    default:
      return undefined;
  }
}

interface RegistryErrorBody {
  errors?: Array<{ code?: unknown; message?: unknown; detail?: unknown }>;
}

function detailText(detail: unknown): string {
  if (detail === undefined || detail === null) return '';
  return ` (${typeof detail === 'string' ? detail : JSON.stringify(detail)})`;
}

function statusCode(status: number, notFound: OciErrorCode): OciErrorCode {
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'DENIED';
  if (status === 404) return notFound;
  if (status === 429) return 'TOOMANYREQUESTS';
  return 'REGISTRY_ERROR';
}

/**
 * Turns an error answer into an OciError naming what was asked (`subject`: registry,
 * repository and reference). The registry's own error code is kept when the spec defines it;
 * a body without errors falls back on the HTTP status (`notFound` says what a 404 means here).
 */
export function registryError(status: number, body: string, subject: string, registry: string, notFound: OciErrorCode = 'NAME_UNKNOWN'): OciError {
  let first: NonNullable<RegistryErrorBody['errors']>[number] | undefined;
  try {
    first = (JSON.parse(body) as RegistryErrorBody).errors?.[0];
  } catch {
    first = undefined;
  }
  const announced = typeof first?.code === 'string' ? first.code : undefined;
  const code = announced !== undefined && registryCodes.has(announced as OciErrorCode) ? (announced as OciErrorCode) : statusCode(status, notFound);
  const said = typeof first?.message === 'string' && first.message !== '' ? first.message : `HTTP ${status}`;
  const foreign = announced !== undefined && announced !== code ? ` [${announced}]` : '';
  return new OciError(code, `${subject}: ${said}${detailText(first?.detail)}${foreign}`, hintFor(code, registry));
}
