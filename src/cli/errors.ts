import { BuildError } from '../build/errors.ts';
import { OciError } from '../oci/errors.ts';
import { ComposeError } from '../swap/compose.ts';
import { SigningError } from '../sign/errors.ts';
import { ProvenanceError } from '../swap/provenance.ts';

/** A failure the user can act on: printed as its message and hint, never as a stack trace. */
export class UserError extends Error {
  readonly hint: string | undefined;
  readonly exitCode: number;
  constructor(message: string, hint?: string, exitCode = 1) {
    super(message);
    this.name = 'UserError';
    this.hint = hint;
    this.exitCode = exitCode;
  }
}

/** Renders any error for a person: known errors as message and hint; unknown ones say it is a bug. */
export function describeError(error: unknown): { text: string; exitCode: number } {
  if (error instanceof UserError) {
    return { text: withHint(`error: ${error.message}`, error.hint), exitCode: error.exitCode };
  }
  if (error instanceof OciError || error instanceof BuildError || error instanceof SigningError) {
    return { text: withHint(`error: ${error.message} [${error.code}]`, error.hint), exitCode: 1 };
  }
  if (error instanceof ComposeError || error instanceof ProvenanceError) return { text: `error: ${error.message}`, exitCode: 1 };
  const detail = error instanceof Error ? (error.stack ?? error.message) : String(error);
  return { text: `internal error (a bug in restack; please report it):\n${detail}`, exitCode: 70 };
}

function withHint(text: string, hint: string | undefined): string {
  return hint === undefined ? text : `${text}\n  hint: ${hint}`;
}
