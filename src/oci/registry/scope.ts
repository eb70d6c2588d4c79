/**
 * Access as token services understand it: to one repository (pull, push), or to the registry's
 * catalog (`registry:catalog:*`, see catalogScope).
 */
export interface Scope {
  /** `repository` when absent. */
  type?: 'registry';
  /** The repository, or `catalog` for the registry's catalog. */
  repository: string;
  actions: Array<'pull' | 'push' | '*'>;
}

/** Listing `/v2/_catalog`: the distribution token spec's `registry:catalog:*`. */
export const catalogScope: Scope = { type: 'registry', repository: 'catalog', actions: ['*'] };

export function scopeString(scope: Scope): string {
  return `${scope.type ?? 'repository'}:${scope.repository}:${scope.actions.join(',')}`;
}

/** The repository whose credentials serve these scopes: none in particular ('') for the catalog. */
export function credentialRepository(scopes: readonly Scope[]): string {
  const first = scopes[0];
  return first === undefined || first.type === 'registry' ? '' : first.repository;
}

/** Whether a token granted for `held` also serves requests needing `wanted` (push,pull covers pull). */
export function scopesCover(held: Scope[], wanted: Scope[]): boolean {
  return wanted.every((need) =>
    held.some((have) => have.type === need.type && have.repository === need.repository && need.actions.every((action) => have.actions.includes(action))),
  );
}
