/**
 * The file holding the key builds sign their layers' change records with and swaps verify them
 * under (swap/layer-record.ts): 32 random bytes, readable by its owner alone. Whoever reads it can
 * forge records that hide an overlap from a swap, so a file others may read is refused rather
 * than trusted.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';
import { SigningError } from './errors.ts';

/** The size of a record key file: exactly this many raw bytes. */
export const recordKeyFileBytes = 32;

/** Names the key file when no flag does. */
export const recordKeyFileVariable = 'RESTACK_LAYER_RECORD_KEY_FILE';

/** `$XDG_CONFIG_HOME/restack/layer-record.key`, else `~/.config/restack/layer-record.key`. */
export function defaultRecordKeyFile(environment: Readonly<Record<string, string | undefined>>): string {
  const config = environment['XDG_CONFIG_HOME'] || join(homedir(), '.config');
  return join(config, 'restack', 'layer-record.key');
}

export interface RecordKeyFileOptions {
  /**
   * Also accept a file its group may read: a Kubernetes Secret mounted into a pod that runs as a
   * non-root user is readable through the pod's fsGroup only. Others may never read it.
   */
  groupReadable?: boolean;
}

const regenerate = (path: string) => `delete it and let restack build create a new one, or write one with: head -c ${recordKeyFileBytes} /dev/urandom > ${path}; chmod 600 ${path}`;

/** The key in `path`; refused, naming the file and the fix, when others may read it or it is not 32 bytes. */
export async function readRecordKeyFile(path: string, options: RecordKeyFileOptions = {}): Promise<Uint8Array> {
  let mode: number;
  let key: Buffer;
  try {
    mode = (await stat(path)).mode;
    key = await readFile(path);
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new SigningError('KEY_INVALID', `the layer record key ${path} cannot be read (${reason})`, 'give the path of a key file that exists (restack build and update create the default one; the chart mounts the operator\'s), or none: swaps then read every layer', { cause: error });
  }
  const forbidden = options.groupReadable === true ? 0o007 : 0o077;
  if ((mode & forbidden) !== 0) {
    const who = (mode & 0o007) !== 0 ? 'every user' : 'its group';
    throw new SigningError(
      'KEY_INVALID',
      `the layer record key ${path} is readable by ${who} (mode ${(mode & 0o777).toString(8).padStart(3, '0')}): whoever reads it can forge the change records swaps trust`,
      `chmod ${options.groupReadable === true ? 640 : 600} ${path}, and if others may have read it, ${regenerate(path)}`,
    );
  }
  if (key.length !== recordKeyFileBytes) {
    throw new SigningError('KEY_INVALID', `the layer record key ${path} holds ${key.length} bytes, not ${recordKeyFileBytes} random bytes`, regenerate(path));
  }
  return key;
}

/** The key in `path`, created first (32 random bytes, mode 0600, its directory 0700) when there is no such file. */
export async function readOrCreateRecordKeyFile(path: string): Promise<Uint8Array> {
  const exists = await stat(path).then(() => true, () => false);
  if (!exists) {
    // Written aside and linked into place: a build starting at the same time reads a whole key,
    // the first one linked, never a file still being written.
    const temporary = `${path}.${process.pid}.tmp`;
    try {
      await mkdir(dirname(path), { recursive: true, mode: 0o700 });
      await writeFile(temporary, randomBytes(recordKeyFileBytes), { mode: 0o600 });
      await link(temporary, path).catch((error: unknown) => {
        if (!(error instanceof Error && 'code' in error && error.code === 'EEXIST')) throw error;
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new SigningError('KEY_UNWRITABLE', `the layer record key ${path} cannot be created (${reason})`, 'give a writable place with --layer-record-key FILE (or $RESTACK_LAYER_RECORD_KEY_FILE), or --no-layer-record-key', { cause: error });
    } finally {
      // Best effort: where the directory could not be made, there is nothing to remove.
      await rm(temporary, { force: true }).catch(() => undefined);
    }
  }
  return readRecordKeyFile(path);
}
