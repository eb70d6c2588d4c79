import { createHash } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import cron, { type Logger as CronLogger, type ScheduledTask } from 'node-cron';
import { LruCache } from '../oci/lru.ts';

export const defaultSchedule = '*/5 * * * *';
const schedulePath = 'spec.updates.schedule';

/** A schedule a user wrote that cron cannot read. */
export class ScheduleError extends Error {
  readonly code = 'SCHEDULE_INVALID';
  readonly path = schedulePath;
  readonly hint: string;
  constructor(expression: string, why: string) {
    const hint = `use a cron expression of 5 fields, or 6 with seconds first, such as "${defaultSchedule}" (every 5 minutes) or "*/30 * * * * *" (every 30 seconds)`;
    super(`${schedulePath} "${expression}": ${why}; ${hint}`);
    this.name = 'ScheduleError';
    this.hint = hint;
  }
}

/**
 * Intervals already worked out, by runs and expression: every watched Stackerfile's schedule is
 * validated, and node-cron finds 100 runs of a yearly schedule by stepping day by day (10,000
 * Stackerfiles on one such schedule took 160 s of the operator's start-up). Bounded, since
 * tenants write the expressions.
 */
const intervals = new LruCache<string, number>(256);

/** The shortest time between two of the next runs of a valid expression, in milliseconds. */
export function shortestInterval(expression: string, runs = 100): number {
  const key = `${runs} ${expression}`;
  const known = intervals.get(key);
  if (known !== undefined) return known;
  const interval = nextRunsInterval(expression, runs);
  intervals.set(key, interval);
  return interval;
}

function nextRunsInterval(expression: string, runs: number): number {
  const task = cron.createTask(expression, () => {});
  const times = task.getNextRuns(runs).map((date) => date.getTime());
  void task.destroy();
  return times.slice(1).reduce((shortest, time, i) => Math.min(shortest, time - (times[i] ?? 0)), Infinity);
}

/**
 * Throws a ScheduleError naming the field, the value and an example unless cron accepts it and,
 * when `minIntervalMs` is given, it never runs more often than that: input checks of every tenant
 * share each registry's rate limit, so an operator sets how often any one may ask.
 */
export function validateSchedule(expression: string, minIntervalMs = 0): void {
  const result = cron.validateDetailed(expression);
  if (!result.valid) {
    const why = result.errors.map((error) => error.message).join('; ');
    throw new ScheduleError(expression, why === '' ? 'not a cron expression' : why);
  }
  if (minIntervalMs <= 0) return;
  const interval = shortestInterval(expression);
  if (interval < minIntervalMs) {
    const seconds = Math.ceil(minIntervalMs / 1000);
    const example = seconds < 60 ? `*/${seconds} * * * * *` : `*/${Math.ceil(seconds / 60)} * * * *`;
    throw new ScheduleError(
      expression,
      `it runs ${interval / 1000} s apart, more often than this operator allows (--min-schedule-interval ${seconds}); ask at most every ${seconds} s, e.g. "${example}"`,
    );
  }
}

/**
 * The fixed delay after each tick of `expression`: a hash of the expression spread over the
 * window, but never more than half the interval between ticks, so each tick still runs before
 * the next. The same expression gets the same delay in every process.
 */
export function jitterFor(expression: string, windowMs: number, intervalMs: number): number {
  const bound = Math.max(0, Math.min(windowMs, Math.floor(intervalMs / 2)));
  if (bound === 0) return 0;
  const fraction = createHash('sha256').update(expression).digest().readUInt32BE(0) / 2 ** 32;
  return Math.floor(fraction * bound);
}

export interface SchedulerOptions {
  /** Called on every tick of an expression (after its jitter); one tick at a time per expression. */
  onTick: (expression: string) => Promise<void> | void;
  /** Errors thrown by onTick; they never stop the schedule. */
  onError?: (expression: string, error: unknown) => void;
  /** Widest jitter in milliseconds (default 30 s); 0 turns jitter off. */
  jitterWindowMs?: number;
  timezone?: string;
  /** Where cron's own messages go (a tick skipped because the last one still runs); default: the console. */
  logger?: CronLogger;
}

/**
 * One cron task per distinct expression, however many owners share it. `sync` is given the
 * expressions in use (InputIndex.schedules()) and starts and stops tasks to match.
 */
export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #tasks = new Map<string, ScheduledTask>();
  readonly #stopping = new AbortController();

  constructor(options: SchedulerOptions) {
    this.#options = options;
  }

  /** Starts a task for each new expression and destroys those no longer listed. Invalid ones throw ScheduleError before anything changes. */
  sync(expressions: Iterable<string>): void {
    const wanted = new Set(expressions);
    for (const expression of wanted) if (!this.#tasks.has(expression)) validateSchedule(expression);
    for (const [expression, task] of this.#tasks) {
      if (wanted.has(expression)) continue;
      void task.destroy();
      this.#tasks.delete(expression);
    }
    for (const expression of wanted) if (!this.#tasks.has(expression)) this.#start(expression);
  }

  /** The expressions with a running task. */
  expressions(): string[] {
    return [...this.#tasks.keys()];
  }

  /** The jitter applied after each tick of `expression`. */
  jitterOf(expression: string): number {
    const task = this.#tasks.get(expression);
    const [first, second] = task?.getNextRuns(2) ?? [];
    const interval = first !== undefined && second !== undefined ? second.getTime() - first.getTime() : 0;
    return jitterFor(expression, this.#options.jitterWindowMs ?? 30_000, interval);
  }

  /** Destroys every task and cancels ticks waiting out their jitter; no timer is left behind. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    const tasks = [...this.#tasks.values()];
    this.#tasks.clear();
    await Promise.all(tasks.map((task) => task.destroy()));
  }

  #start(expression: string): void {
    const task = cron.createTask(expression, () => this.#tick(expression), {
      noOverlap: true,
      ...(this.#options.logger === undefined ? {} : { logger: this.#options.logger }),
      ...(this.#options.timezone === undefined ? {} : { timezone: this.#options.timezone }),
    });
    this.#tasks.set(expression, task);
    void task.start();
  }

  async #tick(expression: string): Promise<void> {
    try {
      const jitter = this.jitterOf(expression);
      if (jitter > 0) await delay(jitter, undefined, { signal: this.#stopping.signal });
      if (this.#stopping.signal.aborted) return;
      await this.#options.onTick(expression);
    } catch (error) {
      if (this.#stopping.signal.aborted) return;
      this.#options.onError?.(expression, error);
    }
  }
}
