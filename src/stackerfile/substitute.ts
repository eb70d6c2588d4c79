import type { Diagnostic } from './diagnostics.ts';
import { LineIndex } from './text-position.ts';

/** Paths stacker provides to every recipe as `${{STACKER_*}}`. */
export const builtinSubstitutionNames = ['STACKER_ROOTFS_DIR', 'STACKER_STACKER_DIR', 'STACKER_OCI_DIR', 'STACKER_WORK_DIR'] as const;

export interface SubstitutionResult {
  text: string;
  diagnostics: Diagnostic[];
  /** Maps an offset in `text` back to the offset in the original, for error positions. */
  originalOffset(offset: number): number;
  /** Values that were substituted from user input, so outputs can redact them. */
  substitutedValues: string[];
  /**
   * Original offsets of placeholders with no value. They are replaced by the bare variable name so
   * the rest of the file can still be checked; problems found at these offsets are consequences.
   */
  unresolvedOffsets: number[];
}

interface Replacement {
  start: number;
  end: number;
  value: string;
}

const placeholder = /\$\{\{([^}]*)\}\}/g;
const namePattern = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * `${{NAME}}` and `${{NAME:default}}` replaced on the raw text before YAML parsing, as stacker
 * does. A supplied key written as `$NAME` or `${NAME}` is reported: it would silently stay a shell
 * variable, empty at build time.
 */
export function substitute(
  original: string,
  file: string,
  values: ReadonlyMap<string, string>,
): SubstitutionResult {
  const lines = new LineIndex(original);
  const diagnostics: Diagnostic[] = [];
  const replacements: Replacement[] = [];
  const substitutedValues = new Set<string>();
  const unresolvedOffsets: number[] = [];
  const report = (offset: number, message: string) =>
    diagnostics.push({ severity: 'error', file, position: lines.position(offset), path: 'substitution', message });

  for (const match of original.matchAll(placeholder)) {
    const body = match[1] ?? '';
    const colon = body.indexOf(':');
    const name = colon < 0 ? body : body.slice(0, colon);
    const start = match.index;
    if (!namePattern.test(name)) {
      report(start, `"\${{${body}}}" has no valid variable name; write \${{NAME}} or \${{NAME:default}} with NAME of letters, digits and _`);
      continue;
    }
    const supplied = values.get(name);
    if (supplied !== undefined) {
      replacements.push({ start, end: start + match[0].length, value: supplied });
      if (!(builtinSubstitutionNames as readonly string[]).includes(name) && supplied !== '') substitutedValues.add(supplied);
    } else if (colon >= 0) {
      replacements.push({ start, end: start + match[0].length, value: body.slice(colon + 1) });
    } else {
      replacements.push({ start, end: start + match[0].length, value: name });
      unresolvedOffsets.push(start);
      report(start, `no value for substitution \${{${name}}}; supply it with --substitute ${name}=VALUE or a substitutions file, or give a default as \${{${name}:default}}`);
    }
  }

  for (const name of values.keys()) {
    if ((builtinSubstitutionNames as readonly string[]).includes(name)) continue;
    const shellForm = new RegExp(`\\$(?:\\{${name}\\}|${name}(?![A-Za-z0-9_]))`, 'g');
    for (const match of original.matchAll(shellForm)) {
      report(match.index, `"${match[0]}" uses the supplied substitution ${name} as a shell variable; write \${{${name}}} so it is substituted`);
    }
  }

  return { ...apply(original, replacements), diagnostics, substitutedValues: [...substitutedValues], unresolvedOffsets };
}

function apply(original: string, replacements: Replacement[]): Pick<SubstitutionResult, 'text' | 'originalOffset'> {
  const pieces: string[] = [];
  // Each entry: where a replaced span starts in the output, its output end, and its original span.
  const spans: { outStart: number; outEnd: number; inStart: number; inEnd: number }[] = [];
  let cursor = 0;
  let outLength = 0;
  for (const r of replacements) {
    pieces.push(original.slice(cursor, r.start), r.value);
    outLength += r.start - cursor;
    spans.push({ outStart: outLength, outEnd: outLength + r.value.length, inStart: r.start, inEnd: r.end });
    outLength += r.value.length;
    cursor = r.end;
  }
  pieces.push(original.slice(cursor));
  const originalOffset = (offset: number): number => {
    let shift = 0;
    for (const span of spans) {
      if (offset < span.outStart) break;
      if (offset < span.outEnd) return span.inStart;
      shift = span.inEnd - span.outEnd;
    }
    return offset + shift;
  };
  return { text: pieces.join(''), originalOffset };
}
