/** Where in a recipe file something is: 1-based line and column. */
export interface Position {
  line: number;
  col: number;
}

export type Severity = 'error' | 'warning';

/**
 * A problem found in a recipe, printed as `FILE:LINE:COL: <path>: <message>`. `path` is the dotted
 * field path (`A.from.type`, `A.imports.0.hash`), `(top)` for the file as a whole, `yaml` for
 * syntax and `substitution` for `${{...}}` problems.
 */
export interface Diagnostic {
  severity: Severity;
  file: string;
  position: Position;
  path: string;
  message: string;
}

export function formatDiagnostic(d: Diagnostic): string {
  const prefix = d.severity === 'warning' ? 'warning: ' : '';
  return `${d.file}:${d.position.line}:${d.position.col}: ${prefix}${d.path}: ${d.message}`;
}

/** Orders diagnostics by position so a file's problems read top to bottom. */
export function sortDiagnostics(list: Diagnostic[]): Diagnostic[] {
  return [...list].sort(
    (a, b) =>
      a.file.localeCompare(b.file) ||
      a.position.line - b.position.line ||
      a.position.col - b.position.col ||
      a.path.localeCompare(b.path),
  );
}

export function formatPath(segments: readonly (string | number)[]): string {
  // a key with blanks or invisible characters is shown quoted, so the path stays one visible word
  const shown = segments.map((segment) => (typeof segment === 'string' && (segment === '' || /[\s\p{C}]/u.test(segment)) ? JSON.stringify(segment) : segment));
  return shown.length === 0 ? '(top)' : shown.join('.');
}

/** Raised when a recipe has errors; carries all of them, not just the first. */
export class RecipeError extends Error {
  readonly diagnostics: Diagnostic[];
  constructor(diagnostics: Diagnostic[]) {
    const errors = diagnostics.filter((d) => d.severity === 'error');
    super(`${errors.length} error${errors.length === 1 ? '' : 's'} in recipe:\n${errors.map(formatDiagnostic).join('\n')}`);
    this.name = 'RecipeError';
    this.diagnostics = diagnostics;
  }
}
