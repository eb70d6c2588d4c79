import { runTool } from './tools.ts';

/** Node has no xattr API: these wrap getfattr/setfattr (package `attr`), one process per batch of paths. */

export type Xattrs = Map<string, Buffer>;

export interface XattrRecord {
  path: string;
  name: string;
  value: Buffer;
}

const argumentBudget = 64 * 1024;

/**
 * Why a name cannot be passed to setfattr as it is, or undefined. Control bytes would break any
 * line-based protocol; a leading `-` reads as an option; a backslash is unquoted by setfattr.
 */
export function xattrNameProblem(name: string): string | undefined {
  if (/[\x00-\x1f\x7f]/.test(name)) return 'contains a line break, NUL or another control character';
  if (name.includes('\\')) return 'contains a backslash';
  if (!/^[a-z]+\.[^\s]+$/.test(name)) return 'is not NAMESPACE.NAME without spaces';
  return undefined;
}

/** getfattr/setfattr quote a file name's unprintable bytes and backslashes as \ooo octal. */
export function quoteAttrPath(path: string): string {
  let out = '';
  for (const byte of Buffer.from(path, 'utf8')) {
    out += byte > 0x20 && byte < 0x7f && byte !== 0x5c ? String.fromCharCode(byte) : `\\${byte.toString(8).padStart(3, '0')}`;
  }
  return out;
}

export function unquoteAttrPath(quoted: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < quoted.length; i++) {
    const octal = quoted[i] === '\\' ? /^[0-7]{3}/.exec(quoted.slice(i + 1)) : null;
    if (octal !== null) {
      bytes.push(parseInt(octal[0], 8));
      i += 3;
    } else if (quoted[i] === '\\' && quoted[i + 1] === '\\') {
      bytes.push(0x5c);
      i += 1;
    } else {
      bytes.push(...Buffer.from(quoted[i] ?? '', 'utf8'));
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Parses `getfattr -d -e hex --absolute-names` output into path -> name -> value. */
export function parseGetfattrDump(text: string): Map<string, Xattrs> {
  const result = new Map<string, Xattrs>();
  let current: Xattrs | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = new Map();
      result.set(unquoteAttrPath(line.slice('# file: '.length)), current);
      continue;
    }
    if (current === undefined || line === '') continue;
    const eq = line.indexOf('=');
    const name = eq === -1 ? line : line.slice(0, eq);
    const raw = eq === -1 ? '' : line.slice(eq + 1);
    current.set(name, raw.startsWith('0x') ? Buffer.from(raw.slice(2), 'hex') : Buffer.alloc(0));
  }
  return result;
}

function batches(paths: readonly string[]): string[][] {
  const out: string[][] = [];
  let batch: string[] = [];
  let length = 0;
  for (const path of paths) {
    if (batch.length > 0 && length + path.length > argumentBudget) {
      out.push(batch);
      batch = [];
      length = 0;
    }
    batch.push(path);
    length += path.length + 1;
  }
  if (batch.length > 0) out.push(batch);
  return out;
}

/** Reads the extended attributes of absolute paths without following symlinks; paths without any are absent. */
export async function readXattrs(paths: readonly string[], namePattern = '-'): Promise<Map<string, Xattrs>> {
  const result = new Map<string, Xattrs>();
  for (const batch of batches(paths)) {
    const dump = await runTool('getfattr', ['-h', '-d', '-e', 'hex', '--absolute-names', '-m', namePattern, '--', ...batch]);
    for (const [path, attrs] of parseGetfattrDump(dump)) result.set(path, attrs);
  }
  return result;
}

/**
 * Sets extended attributes on absolute paths without following symlinks. Each name and value is
 * one argument of its own (`setfattr -n NAME -v 0sBASE64 -- PATH...`), one process per distinct
 * name and value: no text protocol in which a name could start a line of its own. Names are
 * checked again here (xattrNameProblem), so no caller can pass one that setfattr would misread.
 */
export async function writeXattrs(records: readonly XattrRecord[]): Promise<void> {
  const groups = new Map<string, { name: string; value: Buffer; paths: string[] }>();
  for (const record of records) {
    const problem = xattrNameProblem(record.name);
    if (problem !== undefined) throw new Error(`xattr name ${JSON.stringify(record.name)} of ${record.path}: ${problem}`);
    const key = `${record.name}\0${record.value.toString('base64')}`;
    const group = groups.get(key) ?? { name: record.name, value: record.value, paths: [] };
    group.paths.push(record.path);
    groups.set(key, group);
  }
  for (const { name, value, paths } of groups.values()) {
    for (const batch of batches(paths)) await runTool('setfattr', ['-h', '-n', name, '-v', `0s${value.toString('base64')}`, '--', ...batch]);
  }
}
