export type OciErrorCode =
  | 'DIGEST_INVALID'
  | 'DIGEST_MISMATCH'
  | 'SIZE_MISMATCH'
  | 'REFERENCE_INVALID'
  | 'MANIFEST_UNKNOWN'
  | 'MANIFEST_INVALID'
  | 'MANIFEST_UNSUPPORTED'
  | 'MANIFEST_TOO_LARGE'
  | 'BLOB_UNKNOWN'
  | 'UNAUTHORIZED'
  | 'DENIED'
  | 'REGISTRY_ERROR'
  | 'UNREACHABLE'
  | 'LAYOUT_INVALID'
  | 'LAYOUT_LOCKED'
  | 'CONFIG_INVALID'
  | 'PLATFORM_NOT_FOUND'
  | 'CREDENTIALS_INVALID'
  // Codes a registry itself sends (distribution spec v1.1, "Error Codes"), kept as the registry said them.
  | 'NAME_UNKNOWN'
  | 'NAME_INVALID'
  | 'TAG_INVALID'
  | 'MANIFEST_BLOB_UNKNOWN'
  | 'BLOB_UPLOAD_UNKNOWN'
  | 'BLOB_UPLOAD_INVALID'
  | 'SIZE_INVALID'
  | 'RANGE_INVALID'
  | 'PAGINATION_NUMBER_INVALID'
  | 'UNSUPPORTED'
  | 'TOOMANYREQUESTS';

/** An error a user can cause or meet through a store: a code, a message naming the input, and a hint. */
export class OciError extends Error {
  readonly code: OciErrorCode;
  readonly hint: string | undefined;
  constructor(code: OciErrorCode, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'OciError';
    this.code = code;
    this.hint = hint;
  }
}
