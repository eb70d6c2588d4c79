/** How long to wait between attempts: doubling from `initialMs` up to `maxMs`. */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/**
 * Exponential backoff with jitter: the n-th wait in a row is drawn from the upper half of
 * min(max, initial * 2^n), so many clients that failed together do not retry together, and the
 * wait never drops below half of the bound. `reset` after a success starts over.
 */
export class Backoff {
  readonly #policy: BackoffPolicy;
  readonly #random: () => number;
  #failures = 0;

  constructor(policy: BackoffPolicy, random: () => number = Math.random) {
    if (!(policy.initialMs > 0) || !(policy.maxMs >= policy.initialMs)) {
      throw new RangeError(`backoff: initialMs must be above 0 and maxMs at least initialMs, got ${policy.initialMs} and ${policy.maxMs}`);
    }
    this.#policy = policy;
    this.#random = random;
  }

  /** The bound of the wait after `failures` failures in a row (1 for the first). */
  static bound(policy: BackoffPolicy, failures: number): number {
    return Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, failures - 1));
  }

  /** Counts a failure and returns how long to wait before the next attempt. */
  next(): number {
    this.#failures++;
    const bound = Backoff.bound(this.#policy, this.#failures);
    return Math.round(bound / 2 + (bound / 2) * this.#random());
  }

  reset(): void {
    this.#failures = 0;
  }

  get failures(): number {
    return this.#failures;
  }
}
