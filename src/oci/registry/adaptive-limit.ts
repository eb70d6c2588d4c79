/**
 * How many requests run at once against one registry, adapted to how it answers, as TCP adapts
 * its window (additive increase, multiplicative decrease): a request that had to wait for a slot
 * and then succeeded adds 1/limit (about one slot per round of `limit` requests, only while there
 * is more demand than slots); a registry that says it is overloaded (429, 503) or drops the
 * connection halves the limit, once per congestion event (answers to requests sent before the last
 * decrease are the same event). Bounded by `min` and `max`.
 *
 * Latency is not a signal: on a machine the registry shares, a client's own CPU stalls look like
 * slow answers, and a registry that is really overloaded says so, or drops connections.
 */
export interface ConcurrencyBounds {
  initial: number;
  min: number;
  max: number;
}

export const defaultConcurrency: ConcurrencyBounds = { initial: 8, min: 1, max: 32 };

/** How a request ended, for the limit: `overloaded` for 429, 503 and dropped connections. */
export type RequestOutcome = 'ok' | 'overloaded' | 'other';

export class AdaptiveLimit {
  readonly #bounds: ConcurrencyBounds;
  readonly #onChange: (limit: number) => void;
  #limit: number;
  #active = 0;
  readonly #waiting: Array<() => void> = [];
  /** Requests started, and how many had started at the last decrease. */
  #started = 0;
  #decreasedAt = 0;

  constructor(bounds: ConcurrencyBounds, onChange: (limit: number) => void = () => {}) {
    const { initial, min, max } = bounds;
    if (![initial, min, max].every(Number.isInteger) || min < 1 || min > initial || initial > max) {
      throw new RangeError(`concurrency bounds must be integers with 1 <= min <= initial <= max, got min ${min}, initial ${initial}, max ${max}`);
    }
    this.#bounds = bounds;
    this.#limit = initial;
    this.#onChange = onChange;
    onChange(initial);
  }

  /** Requests allowed in flight now. */
  get limit(): number {
    return Math.floor(this.#limit);
  }

  /** Waits for a slot; the returned function frees it, saying how the request ended. */
  async acquire(): Promise<(outcome: RequestOutcome) => void> {
    const queued = this.#active >= this.limit;
    // A slot freed is handed over by #wake, which counts it as active for the waiter.
    if (queued) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    else this.#active++;
    const ticket = ++this.#started;
    let released = false;
    return (outcome) => {
      if (released) return;
      released = true;
      this.#adapt(outcome, ticket, queued || this.#waiting.length > 0);
      this.#active--;
      this.#wake();
    };
  }

  #adapt(outcome: RequestOutcome, ticket: number, demand: boolean): void {
    const before = this.limit;
    if (outcome === 'overloaded' && ticket > this.#decreasedAt) {
      this.#limit = Math.max(this.#bounds.min, Math.floor(this.#limit / 2));
      this.#decreasedAt = this.#started;
    } else if (outcome === 'ok' && demand) {
      this.#limit = Math.min(this.#bounds.max, this.#limit + 1 / this.limit);
    }
    if (this.limit !== before) this.#onChange(this.limit);
  }

  #wake(): void {
    while (this.#active < this.limit && this.#waiting.length > 0) {
      this.#active++;
      (this.#waiting.shift() as () => void)();
    }
  }
}
