export type BuildErrorCode =
  | 'LAYER_HOSTILE'
  | 'LAYER_INVALID'
  | 'LAYER_UNSUPPORTED'
  | 'DIFF_ID_MISMATCH'
  | 'ID_OUT_OF_RANGE'
  | 'ID_RANGE_MISSING'
  | 'TOOL_MISSING'
  | 'TOOL_FAILED'
  | 'STORAGE_INVALID'
  | 'ROOTFS_NOT_REACHABLE'
  | 'ROOTFS_NO_SHELL'
  | 'UNPACK_FAILED';

/**
 * An error a build can meet: a code, a message naming the layer and the path involved, and a hint
 * saying what to do. The CLI and status conditions print message and hint; stack traces are for bugs.
 */
export class BuildError extends Error {
  readonly code: BuildErrorCode;
  readonly hint: string | undefined;
  constructor(code: BuildErrorCode, message: string, hint?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'BuildError';
    this.code = code;
    this.hint = hint;
  }
}
