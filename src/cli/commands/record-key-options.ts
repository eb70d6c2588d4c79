import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { SigningError } from '../../sign/errors.ts';
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
 * missing; where the default one cannot be made (a read-only home), it says so through `warn` and
 * records nothing rather than fail the build. A swap creates none: without the default file it
 * reads the layers, and a file named by the flag or the variable must exist. A file others may
 * read, or not a key, always fails.
 */
export async function recordKeyFrom(
  options: RecordKeyOptions,
  environment: Readonly<Record<string, string | undefined>>,
  create: boolean,
  warn: (message: string) => void = () => {},
): Promise<Uint8Array | undefined> {
  if (options.layerRecordKey === false) return undefined;
  const named = options.layerRecordKey ?? (environment[recordKeyFileVariable] || undefined);
  const path = named ?? defaultRecordKeyFile(environment);
  if (!create) {
    if (named === undefined && !(await stat(path).then(() => true, () => false))) return undefined;
    return readRecordKeyFile(path);
  }
  try {
    return await readOrCreateRecordKeyFile(path);
  } catch (error) {
    if (named !== undefined || !(error instanceof SigningError && error.code === 'KEY_UNWRITABLE')) throw error;
    warn(`${error.message}: no layer change records are written (${error.hint ?? ''})`);
    return undefined;
  }
}
