import { setTimeout as delay } from 'node:timers/promises';

/** How hard the watcher may ask one registry. */
export interface RateLimit {
  /** Sustained requests per second. */
  requestsPerSecond: number;
  /** Requests allowed at once after a quiet spell. */
  burst: number;
  /** Requests in flight at once. */
  maxConcurrency: number;
}

export const defaultRateLimit: RateLimit = { requestsPerSecond: 10, burst: 20, maxConcurrency: 4 };

/** Time as the limiter sees it; tests pass one that advances only when told. */
export interface Clock {
  now(): number;
  sleep(ms: number): Promise<void>;
}

export const systemClock: Clock = { now: () => Date.now(), sleep: (ms) => delay(ms) };

/**
 * A token bucket that lends tokens ahead: `reserve` always takes one and says how long to wait
 * before using it, so callers are served in order and never starve. Pure: time is passed in.
 */
export class TokenBucket {
  readonly #ratePerMs: number;
  readonly #burst: number;
  #tokens: number;
  #updatedAt: number;

  constructor(requestsPerSecond: number, burst: number, now: number) {
    if (!(requestsPerSecond > 0)) throw new RangeError(`requestsPerSecond must be above 0, got ${requestsPerSecond}`);
    if (!Number.isInteger(burst) || burst < 1) throw new RangeError(`burst must be a positive integer, got ${burst}`);
    this.#ratePerMs = requestsPerSecond / 1000;
    this.#burst = burst;
    this.#tokens = burst;
    this.#updatedAt = now;
  }

  /** Takes a token; returns the milliseconds to wait before the request may go. */
  reserve(now: number): number {
    const elapsed = Math.max(0, now - this.#updatedAt);
    this.#tokens = Math.min(this.#burst, this.#tokens + elapsed * this.#ratePerMs);
    this.#updatedAt = Math.max(now, this.#updatedAt);
    this.#tokens -= 1;
    return this.#tokens >= 0 ? 0 : Math.ceil(-this.#tokens / this.#ratePerMs);
  }
}

/**
 * Slots for the requests of many tenants: while all are taken, the tenants waiting are served in
 * turn, one request each, so a tenant with a thousand checks queued does not hold up another's one.
 */
export class FairSlots {
  readonly #limit: number;
  #active = 0;
  /** Per tenant, its waiters in order; the Map's order is the turn (a tenant served goes to the back). */
  readonly #waiting = new Map<string, Array<() => void>>();

  constructor(limit: number) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`concurrency limit must be a positive integer, got ${limit}`);
    this.#limit = limit;
  }

  async acquire(tenant: string): Promise<() => void> {
    if (this.#active < this.#limit) {
      this.#active++;
    } else {
      // The releaser hands its slot over directly, so #active stays counted.
      await new Promise<void>((resolve) => {
        const queue = this.#waiting.get(tenant);
        if (queue === undefined) this.#waiting.set(tenant, [resolve]);
        else queue.push(resolve);
      });
    }
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#handOver();
    };
  }

  #handOver(): void {
    const turn = this.#waiting.entries().next();
    if (turn.done === true) {
      this.#active--;
      return;
    }
    const [tenant, queue] = turn.value;
    const next = queue.shift();
    this.#waiting.delete(tenant);
    if (queue.length > 0) this.#waiting.set(tenant, queue);
    next?.();
  }
}

/** One registry's limiter: a token bucket for the rate and fair slots for concurrency. */
export class RegistryLimiter {
  readonly #bucket: TokenBucket;
  readonly #slots: FairSlots;
  readonly #clock: Clock;

  constructor(limit: RateLimit, clock: Clock = systemClock) {
    this.#clock = clock;
    this.#bucket = new TokenBucket(limit.requestsPerSecond, limit.burst, clock.now());
    this.#slots = new FairSlots(limit.maxConcurrency);
  }

  /** Runs `request` within the limits; `tenant` (a namespace) takes its turn with the others waiting. */
  async run<T>(request: () => Promise<T>, tenant = ''): Promise<T> {
    const release = await this.#slots.acquire(tenant);
    try {
      const wait = this.#bucket.reserve(this.#clock.now());
      if (wait > 0) await this.#clock.sleep(wait);
      return await request();
    } finally {
      release();
    }
  }
}

/** Limiters per registry host, with one default and overrides by host. */
export class RateLimits {
  readonly #defaults: RateLimit;
  readonly #overrides: Readonly<Record<string, Partial<RateLimit>>>;
  readonly #clock: Clock;
  readonly #limiters = new Map<string, RegistryLimiter>();

  constructor(options: { defaults?: RateLimit; perRegistry?: Record<string, Partial<RateLimit>>; clock?: Clock } = {}) {
    this.#defaults = options.defaults ?? defaultRateLimit;
    this.#overrides = options.perRegistry ?? {};
    this.#clock = options.clock ?? systemClock;
  }

  for(registry: string): RegistryLimiter {
    let limiter = this.#limiters.get(registry);
    if (limiter === undefined) {
      limiter = new RegistryLimiter({ ...this.#defaults, ...this.#overrides[registry] }, this.#clock);
      this.#limiters.set(registry, limiter);
    }
    return limiter;
  }
}
