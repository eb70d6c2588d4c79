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
  | 'LAYOUT_INVALID';

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
