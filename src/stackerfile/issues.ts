import type { z } from 'zod';
import { fromKeys, layerKeys } from './schema.ts';

/** A schema problem reduced to what a person needs: the field path and a sentence. */
export interface FieldProblem {
  path: (string | number)[];
  message: string;
}

/**
 * Turns zod issues into field problems. A failed union is explained by the one alternative whose
 * type matched (so `imports: [{path: x, hash: bad}]` reports the hash, not "expected a string"),
 * and an unknown key is reported at the key itself with the closest known key as a suggestion.
 */
export function explainIssues(issues: readonly z.core.$ZodIssue[], prefix: (string | number)[] = []): FieldProblem[] {
  return issues.flatMap((issue) => explainIssue(issue, prefix));
}

function explainIssue(issue: z.core.$ZodIssue, prefix: (string | number)[]): FieldProblem[] {
  const path = [...prefix, ...issue.path.map((segment) => (typeof segment === 'symbol' ? String(segment) : segment))];
  if (issue.code === 'unrecognized_keys') {
    const known = path.at(-1) === 'from' ? fromKeys : path.length === 1 ? layerKeys : [];
    return issue.keys.map((key) => ({ path: [...path, key], message: unknownKeyMessage(key, known) }));
  }
  if (issue.code === 'invalid_union') {
    const matching = issue.errors.filter((branch) => !branch.some((inner) => inner.code === 'invalid_type' && inner.path.length === 0));
    if (matching.length === 1) return explainIssues(matching[0] ?? [], path);
  }
  return [{ path, message: issue.message }];
}

function unknownKeyMessage(key: string, known: readonly string[]): string {
  const nearest = known
    .map((candidate) => ({ candidate, distance: editDistance(key.toLowerCase(), candidate) }))
    .sort((a, b) => a.distance - b.distance)[0];
  const suggestion = nearest !== undefined && nearest.distance <= 2 ? `; did you mean "${nearest.candidate}"?` : '';
  const allowed = known.length > 0 ? ` (allowed: ${known.join(', ')})` : '';
  return `unknown directive "${key}"${suggestion}${suggestion === '' ? allowed : ''}`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
