/** Access to one repository, as token services understand it. */
export interface Scope {
  repository: string;
  actions: Array<'pull' | 'push'>;
}

export function scopeString(scope: Scope): string {
  return `repository:${scope.repository}:${scope.actions.join(',')}`;
}

/** Whether a token granted for `held` also serves requests needing `wanted` (push,pull covers pull). */
export function scopesCover(held: Scope[], wanted: Scope[]): boolean {
  return wanted.every((need) => held.some((have) => have.repository === need.repository && need.actions.every((action) => have.actions.includes(action))));
}
