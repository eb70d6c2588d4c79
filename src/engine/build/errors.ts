export type LayerBuildErrorCode =
  | 'RUN_FAILED'
  | 'IMPORT_MISSING'
  | 'IMPORT_HASH_MISMATCH'
  | 'IMPORT_INVALID'
  | 'IMPORT_DOWNLOAD_FAILED'
  | 'COMMAND_INVALID'
  | 'BASE_INVALID'
  | 'BIND_MISSING'
  | 'HOST_PATH_REFUSED'
  | 'PUSH_INVALID';

/** Details a failed `run:` leaves for the person who has to fix it. */
export interface RunFailureDetails {
  exitCode: number;
  lastLines: string[];
  /** The working rootfs, kept for inspection. */
  keptRootfs?: string;
}

/**
 * A build failure the recipe's author can fix: names the layer and the input involved, and says
 * what to change. The CLI prints message and hint; the JSON `error` event carries the details.
 */
export class LayerBuildError extends Error {
  readonly code: LayerBuildErrorCode;
  readonly layer: string;
  readonly hint: string | undefined;
  readonly run: RunFailureDetails | undefined;
  constructor(code: LayerBuildErrorCode, layer: string, message: string, hint?: string, run?: RunFailureDetails) {
    super(message);
    this.name = 'LayerBuildError';
    this.code = code;
    this.layer = layer;
    this.hint = hint;
    this.run = run;
  }
}
