import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { defaultRecordKeyFile, readOrCreateRecordKeyFile, readRecordKeyFile, recordKeyFileVariable } from '../../sign/record-key-file.ts';

export interface RecordKeyOptions {
  /** A file, or false with --no-layer-record-key; undefined: $RESTACK_LAYER_RECORD_KEY_FILE, else the default file. */
  layerRecordKey?: string | false;
}

/** Options for commands that build (sign their layers' change records) or swap (verify them). */
export function addRecordKeyOptions(command: Command): Command {
  return command
    .option(
      '--layer-record-key <file>',
      `the key builds sign each own layer's changed paths with, and swaps verify them under, so a swap reads no own layer (default: $${recordKeyFileVariable}, else ~/.config/restack/layer-record.key, created by build and update; docs/security.md)`,
    )
    .option('--no-layer-record-key', 'record no changes, trust none: swaps read every layer they check');
}

/**
 * The record key the options name. `create`: a build or an update makes the file when it is
 * missing. A swap does not: without the default file it reads the layers, and a file named by the
 * flag or the variable must exist.
 */
export async function recordKeyFrom(options: RecordKeyOptions, environment: Readonly<Record<string, string | undefined>>, create: boolean): Promise<Uint8Array | undefined> {
  if (options.layerRecordKey === false) return undefined;
  const named = options.layerRecordKey ?? (environment[recordKeyFileVariable] || undefined);
  const path = named ?? defaultRecordKeyFile(environment);
  if (create) return readOrCreateRecordKeyFile(path);
  if (named === undefined && !(await stat(path).then(() => true, () => false))) return undefined;
  return readRecordKeyFile(path);
}
