import type { Position } from './diagnostics.ts';

/** Maps character offsets of a text to 1-based line and column. */
export class LineIndex {
  readonly #lineStarts: number[] = [0];
  constructor(text: string) {
    for (let i = 0; i < text.length; i++) if (text[i] === '\n') this.#lineStarts.push(i + 1);
  }
  position(offset: number): Position {
    let low = 0;
    let high = this.#lineStarts.length - 1;
    while (low < high) {
      const mid = (low + high + 1) >> 1;
      if ((this.#lineStarts[mid] ?? 0) <= offset) low = mid;
      else high = mid - 1;
    }
    return { line: low + 1, col: offset - (this.#lineStarts[low] ?? 0) + 1 };
  }
}
