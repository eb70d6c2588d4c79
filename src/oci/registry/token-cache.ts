import { scopesCover, scopeString, type Scope } from './scope.ts';

export interface Token {
  token: string;
  expiresAt: number;
}

interface Entry {
  identity: string;
  scopes: Scope[];
  pending: Promise<Token>;
  settled?: Token;
}

/**
 * Bearer tokens per credential and scope set. A token for more access is reused for less (a
 * push,pull token serves a pull), and a token being fetched is shared by everyone asking for
 * the same scopes meanwhile.
 */
export class TokenCache {
  readonly #entries = new Map<string, Entry>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  #key(identity: string, scopes: Scope[]): string {
    return `${identity} ${scopes.map(scopeString).sort().join(' ')}`;
  }

  get(identity: string, scopes: Scope[]): Promise<Token> | undefined {
    const now = this.#now();
    for (const [key, entry] of this.#entries) {
      if (entry.settled !== undefined && entry.settled.expiresAt <= now) this.#entries.delete(key);
    }
    const exact = this.#entries.get(this.#key(identity, scopes));
    if (exact !== undefined) return exact.pending;
    for (const entry of this.#entries.values()) {
      if (entry.identity === identity && entry.settled !== undefined && scopesCover(entry.scopes, scopes)) return entry.pending;
    }
    return undefined;
  }

  set(identity: string, scopes: Scope[], pending: Promise<Token>): void {
    const key = this.#key(identity, scopes);
    const entry: Entry = { identity, scopes, pending };
    this.#entries.set(key, entry);
    pending.then(
      (token) => (entry.settled = token),
      () => {
        if (this.#entries.get(key) === entry) this.#entries.delete(key);
      },
    );
  }

  /** Drops every token that would serve these scopes (after the registry refused one). */
  forget(scopes: Scope[]): void {
    for (const [key, entry] of this.#entries) if (scopesCover(entry.scopes, scopes)) this.#entries.delete(key);
  }
}
