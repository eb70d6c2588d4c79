import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BuildProgress, StatusLine, UpdateProgress, formatBytes, progressReporter } from '../../src/cli/progress.ts';
import type { Output } from '../../src/cli/output.ts';

test('a build\'s status line says which layer of how many, its step and time, bytes written and the total time', () => {
  const progress = new BuildProgress(0);
  progress.observe({ event: 'layer-start', layer: 'ssl', index: 1, total: 3, buildOnly: false }, 0);
  progress.observe({ event: 'layer-done', layer: 'ssl', digest: 'sha256:1', cached: false, ownLayers: 1, bytes: 4_200_000, elapsedMs: 1000 }, 1000);
  progress.observe({ event: 'layer-start', layer: 'python3', index: 2, total: 3, buildOnly: false }, 1000);
  progress.observe({ event: 'step', layer: 'python3', step: 'run', message: '', elapsedMs: 200 }, 1200);
  assert.equal(progress.describe(4400), '[2/3] python3: run 3.2s · 1 of 3 layers done, 4.2 MB written · 4.4s');
});

test('an update\'s status line counts images by outcome and shows the image under way', () => {
  const progress = new UpdateProgress(3, 0);
  progress.observe({ event: 'decision', image: 'ssl', ref: 'r', action: 'nothing', message: 'current' }, 0);
  progress.observe({ event: 'image-done', image: 'ssl', ref: 'r', action: 'nothing', message: 'current', before: 'sha256:1', after: 'sha256:1' }, 100);
  progress.observe({ event: 'decision', image: 'A', ref: 'r', action: 'swap', message: 'python3 changed' }, 200);
  assert.equal(progress.describe(1500), '1/3 images (0 swapped, 0 rebuilt, 1 unchanged) · A: swap · 1.5s');
  progress.observe({ event: 'image-done', image: 'A', ref: 'r', action: 'swapped', message: 'python3 changed', before: 'sha256:2', after: 'sha256:3' }, 1600);
  progress.observe({ event: 'decision', image: 'B', ref: 'r', action: 'rebuild', reason: 'BaseUpdate', message: 'base changed' }, 1700);
  progress.observe({ event: 'layer-start', layer: 'B', index: 3, total: 3, buildOnly: false }, 1700);
  assert.match(progress.describe(2000), /^2\/3 images \(1 swapped, 0 rebuilt, 1 unchanged\) · \[3\/3\] B: starting 0\.3s/);
});

test('sizes are printed in decimal units', () => {
  assert.deepEqual([0, 999, 1000, 12_345_678, 3e12].map(formatBytes), ['0 B', '999 B', '1.0 KB', '12.3 MB', '3.0 TB']);
});

test('on a terminal, log lines are written above the status line, which is erased and drawn again, cut to the width', () => {
  let screen = '';
  let status = 'building';
  const line = new StatusLine({ columns: 12, write: (text) => (screen += text) }, () => status, 60_000);
  line.refresh();
  line.line('first');
  status = 'a status far wider than the terminal';
  line.refresh();
  line.stop();
  assert.equal(screen, '\r\x1b[Kbuilding\r\x1b[Kfirst\n\r\x1b[Kbuilding\r\x1b[Ka status f…\r\x1b[K');
});

test('without a terminal (or for --json) lines go straight to stderr and no status is drawn', () => {
  const lines: string[] = [];
  const output: Output = { out: () => {}, err: (text) => lines.push(text) };
  const reporter = progressReporter(output, () => 'never shown');
  reporter.err('a line');
  reporter.stop();
  assert.deepEqual(lines, ['a line']);
  const onTerminal = progressReporter({ ...output, terminal: { write: (text) => lines.push(text) } }, undefined);
  onTerminal.err('json mode');
  assert.deepEqual(lines, ['a line', 'json mode']);
});
