export type SigningErrorCode =
  | 'KEY_INVALID'
  | 'KEY_UNWRITABLE'
  | 'KEY_UNSUPPORTED'
  | 'KEY_PASSWORD'
  | 'REGISTRY_REQUIRED'
  | 'SIGNATURE_MISSING'
  | 'SIGNATURE_INVALID'
  | 'ATTESTATION_MISSING'
  | 'ATTESTATION_INVALID';

/** A signing or verification failure a user can act on: a code, a message naming the input, a hint. */
export class SigningError extends Error {
  readonly code: SigningErrorCode;
  readonly hint: string | undefined;
  constructor(code: SigningErrorCode, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SigningError';
    this.code = code;
    this.hint = hint;
  }
}
