/**
 * A work queue of object keys (namespace/name), as controller-runtime's: a key is never handled by
 * two workers at once, a key added while pending is queued once, a key added while being handled
 * is handled again afterwards, and failures come back after a capped exponential backoff.
 */
export type Handler = (key: string) => Promise<Result | void>;

/** What a handler asks for after a success: to be looked at again after a while (e.g. a missing input). */
export interface Result {
  requeueAfterMs?: number;
}

export interface QueueOptions {
  /** Keys handled at once (different keys only). */
  concurrency?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  /** Called after each handling, for metrics and logs. */
  onDone?: (key: string, outcome: { ok: boolean; seconds: number; error?: unknown }) => void;
}

export class WorkQueue {
  readonly #handler: Handler;
  readonly #concurrency: number;
  readonly #baseDelayMs: number;
  readonly #maxDelayMs: number;
  readonly #onDone: QueueOptions['onDone'];
  /** Keys waiting to be handled, in order; `#pending` mirrors it for de-duplication. */
  readonly #order: string[] = [];
  readonly #pending = new Set<string>();
  readonly #active = new Set<string>();
  /** Keys added again while active: handled once the current handling ends. */
  readonly #dirty = new Set<string>();
  readonly #timers = new Map<string, { timer: NodeJS.Timeout; due: number }>();
  readonly #failures = new Map<string, number>();
  readonly #idleWaiters: (() => void)[] = [];
  #running = false;

  constructor(handler: Handler, options: QueueOptions = {}) {
    this.#handler = handler;
    this.#concurrency = options.concurrency ?? 2;
    this.#baseDelayMs = options.baseDelayMs ?? 500;
    this.#maxDelayMs = options.maxDelayMs ?? 60_000;
    this.#onDone = options.onDone;
  }

  /** Keys waiting (not counting those being handled or waiting on a timer). */
  get depth(): number {
    return this.#order.length;
  }

  start(): void {
    this.#running = true;
    this.#pump();
  }

  /** Stops taking keys; resolves when the handlings under way have ended. Pending keys are dropped. */
  async stop(): Promise<void> {
    this.#running = false;
    for (const { timer } of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
    this.#order.length = 0;
    this.#pending.clear();
    this.#dirty.clear();
    await this.idle();
  }

  /** Resolves when no key is being handled. */
  idle(): Promise<void> {
    if (this.#active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  add(key: string): void {
    if (this.#active.has(key)) {
      this.#dirty.add(key);
      return;
    }
    if (this.#pending.has(key)) return;
    this.#pending.add(key);
    this.#order.push(key);
    this.#pump();
  }

  /** Adds the key after `ms`; an earlier timer for the key is kept if it fires sooner. */
  addAfter(key: string, ms: number): void {
    const due = Date.now() + ms;
    const existing = this.#timers.get(key);
    if (existing !== undefined && existing.due <= due) return;
    if (existing !== undefined) clearTimeout(existing.timer);
    const timer = setTimeout(() => {
      this.#timers.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.#timers.set(key, { timer, due });
  }

  /** The delay before retrying a key that failed `failures` times in a row. */
  backoff(failures: number): number {
    return Math.min(this.#baseDelayMs * 2 ** Math.max(0, failures - 1), this.#maxDelayMs);
  }

  #pump(): void {
    while (this.#running && this.#active.size < this.#concurrency) {
      const index = this.#order.findIndex((key) => !this.#active.has(key));
      if (index < 0) return;
      const [key] = this.#order.splice(index, 1) as [string];
      this.#pending.delete(key);
      this.#active.add(key);
      void this.#handle(key);
    }
  }

  async #handle(key: string): Promise<void> {
    const started = performance.now();
    let ok = true;
    let error: unknown;
    let result: Result | void = undefined;
    try {
      result = await this.#handler(key);
    } catch (caught) {
      ok = false;
      error = caught;
    }
    this.#onDone?.(key, { ok, seconds: (performance.now() - started) / 1000, ...(ok ? {} : { error }) });
    this.#active.delete(key);
    if (this.#running) {
      if (ok) {
        this.#failures.delete(key);
        if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
      } else {
        const failures = (this.#failures.get(key) ?? 0) + 1;
        this.#failures.set(key, failures);
        this.addAfter(key, this.backoff(failures));
      }
      if (this.#dirty.delete(key)) this.add(key);
    }
    if (this.#active.size === 0) for (const resolve of this.#idleWaiters.splice(0)) resolve();
    this.#pump();
  }
}
