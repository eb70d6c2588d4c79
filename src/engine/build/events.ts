import type { Provenance } from '../../swap/provenance.ts';

/**
 * What a build reports as it goes: one event per line in `restack build --json` (the build pod's
 * protocol), human lines on stderr otherwise. A `step` event marks the start of a step;
 * `elapsedMs` counts from the start of its layer.
 */
export type BuildStep = 'resolve' | 'imports' | 'cache' | 'rootfs' | 'run' | 'layer' | 'image' | 'push';

export interface BuildOutput {
  name: string;
  /** Where the image was written: `oci:<oci-dir>:<name>`. */
  ref: string;
  digest: string;
  buildOnly: boolean;
  cached: boolean;
  provenance: Provenance;
  /** `<registry ref>@<digest>` for each tag pushed. */
  pushed: string[];
}

export type BuildEvent =
  | { event: 'layer-start'; layer: string; index: number; total: number; buildOnly: boolean }
  | { event: 'step'; layer: string; step: BuildStep; message: string; elapsedMs: number }
  | { event: 'output'; layer: string; line: string }
  | { event: 'warning'; layer: string; message: string; paths: string[] }
  | { event: 'layer-done'; layer: string; digest: string; cached: boolean; ownLayers: number; bytes: number; elapsedMs: number }
  | { event: 'build-done'; outputs: BuildOutput[]; elapsedMs: number }
  | {
      event: 'error';
      layer?: string;
      code: string;
      message: string;
      hint?: string;
      exitCode?: number;
      lastLines?: string[];
      keptRootfs?: string;
    };

export type EventSink = (event: BuildEvent) => void;

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}

const shownPaths = 10;

/** The line a person sees on stderr for an event; undefined for events shown otherwise (the final summary, errors). */
export function describeEvent(event: BuildEvent): string | undefined {
  switch (event.event) {
    case 'layer-start':
      return `[${event.index}/${event.total}] ${event.layer}${event.buildOnly ? ' (build only)' : ''}`;
    case 'step':
      return `  ${event.layer}: ${event.step}${event.message === '' ? '' : ` ${event.message}`} (${seconds(event.elapsedMs)})`;
    case 'output':
      return `${event.layer}: ${event.line}`;
    case 'warning': {
      const paths = event.paths.slice(0, shownPaths).map((path) => `\n    ${path}`).join('');
      const more = event.paths.length > shownPaths ? `\n    ... and ${event.paths.length - shownPaths} more` : '';
      return `  ${event.layer}: warning: ${event.message}${paths}${more}`;
    }
    case 'layer-done': {
      const what = event.cached ? 'cached' : `${event.ownLayers} own layer${event.ownLayers === 1 ? '' : 's'}, ${event.bytes} bytes`;
      return `  ${event.layer}: done ${event.digest} (${what}, ${seconds(event.elapsedMs)})`;
    }
    case 'build-done':
    case 'error':
      return undefined;
  }
}

/** The final summary on stdout: one line per output image, then what was pushed. */
export function summarizeOutputs(outputs: readonly BuildOutput[]): string {
  return outputs
    .map((output) => {
      const pushed = output.pushed.map((ref) => `\n  pushed ${ref}`).join('');
      return `${output.ref}@${output.digest}${output.buildOnly ? ' (build only)' : ''}${output.cached ? ' (cached)' : ''}${pushed}`;
    })
    .join('\n');
}
