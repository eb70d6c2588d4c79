import type { BuildEvent } from '../engine/build/events.ts';
import type { UpdateEvent } from '../engine/update.ts';
import type { Output } from './output.ts';

/** A terminal that a status line can be drawn on (process.stderr when it is a TTY). */
export interface Terminal {
  columns?: number;
  write(text: string): unknown;
}

const clearLine = '\r\x1b[K';

/**
 * One status line kept under the log lines of a long command on a terminal, redrawn a few times a
 * second so elapsed time moves even while a step prints nothing. Log lines go through `line()`
 * so the status is erased first and drawn again after them.
 */
export class StatusLine {
  readonly #terminal: Terminal;
  readonly #render: () => string;
  readonly #timer: NodeJS.Timeout;
  #shown = false;

  constructor(terminal: Terminal, render: () => string, intervalMs = 250) {
    this.#terminal = terminal;
    this.#render = render;
    this.#timer = setInterval(() => this.refresh(), intervalMs).unref();
  }

  line(text: string): void {
    this.#clear();
    this.#terminal.write(text.endsWith('\n') ? text : `${text}\n`);
    this.refresh();
  }

  refresh(): void {
    const width = Math.max((this.#terminal.columns ?? 80) - 1, 10);
    const status = this.#render();
    this.#terminal.write(`${clearLine}${status.length > width ? `${status.slice(0, width - 1)}…` : status}`);
    this.#shown = true;
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#clear();
  }

  #clear(): void {
    if (this.#shown) this.#terminal.write(clearLine);
    this.#shown = false;
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return unit === 0 ? `${value} B` : `${value.toFixed(1)} ${units[unit]}`;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)}s`;

/** Where a build stands, folded from its events: what the status line shows. */
export class BuildProgress {
  readonly #started: number;
  #layer = '';
  #index = 0;
  #total = 0;
  #step = 'starting';
  #stepStarted: number;
  #layersDone = 0;
  #bytes = 0;

  constructor(now: number) {
    this.#started = now;
    this.#stepStarted = now;
  }

  observe(event: BuildEvent, now: number): void {
    switch (event.event) {
      case 'layer-start':
        [this.#layer, this.#index, this.#total, this.#step, this.#stepStarted] = [event.layer, event.index, event.total, 'starting', now];
        break;
      case 'step':
        [this.#layer, this.#step, this.#stepStarted] = [event.layer, event.step, now];
        break;
      case 'layer-done':
        this.#layersDone += 1;
        this.#bytes += event.bytes;
        [this.#step, this.#stepStarted] = ['done', now];
        break;
      default:
        break;
    }
  }

  /** e.g. `[2/4] python3: run 3.2s · 1 of 4 layers done, 12.5 MB written · 10.1s` */
  describe(now: number): string {
    const position = this.#total === 0 ? '' : `[${this.#index}/${this.#total}] `;
    return `${position}${this.#layer === '' ? 'build' : this.#layer}: ${this.#step} ${seconds(now - this.#stepStarted)} · ${this.#layersDone} of ${this.#total} layers done, ${formatBytes(this.#bytes)} written · ${seconds(now - this.#started)}`;
  }
}

/** Where an update (one pass over a recipe's images: swaps, rebuilds, nothing) stands. */
export class UpdateProgress {
  readonly #started: number;
  readonly #total: number;
  readonly #done = { swapped: 0, rebuilt: 0, nothing: 0 };
  readonly #build: BuildProgress;
  #current = '';
  #building = false;

  constructor(total: number, now: number) {
    this.#started = now;
    this.#total = total;
    this.#build = new BuildProgress(now);
  }

  observe(event: UpdateEvent, now: number): void {
    switch (event.event) {
      case 'decision':
        [this.#current, this.#building] = [`${event.image}: ${event.action}`, event.action === 'rebuild'];
        break;
      case 'image-done':
        this.#done[event.action] += 1;
        [this.#current, this.#building] = ['', false];
        break;
      case 'update-done':
        break;
      default:
        this.#build.observe(event, now);
    }
  }

  /** e.g. `3/10 images (2 swapped, 1 rebuilt, 0 unchanged) · A: swap · 4.2s` */
  describe(now: number): string {
    const { swapped, rebuilt, nothing } = this.#done;
    const current = this.#building ? this.#build.describe(now) : this.#current;
    return `${swapped + rebuilt + nothing}/${this.#total} images (${swapped} swapped, ${rebuilt} rebuilt, ${nothing} unchanged)${current === '' ? '' : ` · ${current}`} · ${seconds(now - this.#started)}`;
  }
}

/**
 * Where a command's stderr lines go: through a status line drawn by `describe` when stderr is a
 * terminal and the command prints for people, straight to stderr otherwise.
 */
export function progressReporter(output: Output, describe: ((now: number) => string) | undefined): { err(text: string): void; stop(): void } {
  if (output.terminal === undefined || describe === undefined) return { err: (text) => output.err(text), stop: () => {} };
  const status = new StatusLine(output.terminal, () => describe(Date.now()));
  return { err: (text) => status.line(text), stop: () => status.stop() };
}
