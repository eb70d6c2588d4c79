import { constants, createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa } from 'execa';
import { normaliseEntryPath, type LayerEntry } from '../swap/safety.ts';
import { overlayOpaqueNames } from './diff/xattrs.ts';
import { BuildError } from './errors.ts';
import { makeNode } from './special-files.ts';
import { installHint, runTool } from './tools.ts';
import { readXattrs } from './xattr.ts';

/**
 * What a squashfs layer (stacker's format, which restack also writes) changes, for the overlap
 * analysis. Whiteouts are overlayfs style: 0/0 character devices; opaque directories carry the
 * `trusted.overlay.opaque=y` xattr. unsquashfs 4.5 lists names, types and hard links as a pseudo
 * file (`-pf`), but no xattrs: the directories alone are extracted (every other path excluded)
 * to read them. Where that cannot be done (trusted.* xattrs cannot be written inside a user
 * namespace) the listing fails, and the swap is refused rather than analysed without them.
 */
export async function listSquashfsEntries(blob: Readable, digest: string): Promise<LayerEntry[]> {
  const work = await mkdtemp(join(tmpdir(), 'restack-squashfs-'));
  try {
    const image = join(work, 'layer.squashfs');
    await pipeline(blob, createWriteStream(image));
    const entries = parsePseudoFile(await pseudoDefinitions(image, work), digest);
    return [...entries, ...(await opaqueDirectories(image, work, entries, digest))];
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const dataMarker = '# START OF DATA - DO NOT MODIFY';

/**
 * The definitions of `unsquashfs -pf`, read up to where file data starts; the data itself is never
 * read. The pseudo file is a FIFO (unsquashfs cannot write it to a socket, which is what a child's
 * stdout is); when unsquashfs ends without opening it, opening it for writing ends the read.
 */
async function pseudoDefinitions(image: string, work: string): Promise<string[]> {
  const fifo = join(work, 'pseudo');
  await makeNode(fifo, 'fifo');
  const subprocess = execa('unsquashfs', ['-no-progress', '-pf', fifo, image], { reject: false, stdin: 'ignore' });
  const reader = createReadStream(fifo, { encoding: 'utf8' });
  let opened = false;
  reader.on('open', () => {
    opened = true;
  });
  const ended = subprocess.then(async (result) => {
    // A reader still waiting in open() (unsquashfs ended without opening the FIFO) counts as one:
    // opening the FIFO for writing ourselves then succeeds and lets it see the end. Until its
    // open has started (a busy thread pool), there is no reader yet: try again shortly.
    while (!opened && !reader.destroyed) {
      const writer = await open(fifo, constants.O_WRONLY | constants.O_NONBLOCK).catch(() => undefined);
      if (writer !== undefined) {
        await writer.close();
        break;
      }
      await sleep(10);
    }
    return result;
  });
  const lines: string[] = [];
  let complete = false;
  try {
    for await (const line of createInterface({ input: reader, crlfDelay: Infinity })) {
      if (line === dataMarker) {
        complete = true;
        break;
      }
      lines.push(line);
    }
  } finally {
    reader.destroy();
    subprocess.kill();
  }
  const result = await ended;
  if (result.code === 'ENOENT') throw new BuildError('TOOL_MISSING', 'unsquashfs is not installed (needed to list a squashfs layer)', installHint('unsquashfs'));
  if (!complete && result.exitCode !== 0) throw new BuildError('TOOL_FAILED', `the squashfs layer cannot be listed: unsquashfs -pf failed (exit ${result.exitCode ?? 'none'}): ${String(result.stderr).trim()}`);
  // a layer without regular files has no data section: its definitions end the file
  return lines.filter((line) => line !== '' && line !== '#');
}

/** A pseudo-file name: backslash escapes the next character, an unescaped space ends it. */
function splitName(line: string): { name: string; rest: string } {
  let name = '';
  for (let i = 0; i < line.length; i++) {
    const char = line[i] as string;
    if (char === '\\' && i + 1 < line.length) name += line[++i];
    else if (char === ' ') return { name, rest: line.slice(i + 1) };
    else name += char;
  }
  return { name, rest: '' };
}

/** Parses `unsquashfs -pf` definitions; a line it cannot read (a name with a line break) fails the whole listing. */
export function parsePseudoFile(lines: readonly string[], digest: string): LayerEntry[] {
  const entries: LayerEntry[] = [];
  for (const line of lines) {
    const { name, rest } = splitName(line);
    const fields = rest.split(' ');
    const path = normaliseEntryPath(name);
    const unreadable = () => new BuildError('LAYER_UNSUPPORTED', `squashfs layer ${digest}: cannot read the listing line ${JSON.stringify(line)}`);
    switch (fields[0]) {
      case 'D':
        if (path !== '') entries.push({ path, kind: 'directory' });
        break;
      case 'L':
        entries.push({ path, kind: 'file', link: normaliseEntryPath(splitName(fields.slice(1).join(' ')).name) });
        break;
      case 'C': {
        // time mode uid gid major minor
        const [major, minor] = fields.slice(5, 7);
        if (major === undefined || minor === undefined) throw unreadable();
        entries.push({ path, kind: major === '0' && minor === '0' ? 'whiteout' : 'file' });
        break;
      }
      // regular file, symbolic link, block device, fifo or socket (`I ... f|s`)
      case 'R':
      case 'S':
      case 'B':
      case 'I':
        entries.push({ path, kind: 'file' });
        break;
      default:
        throw unreadable();
    }
    if (path === '' && fields[0] !== 'D') throw unreadable();
  }
  return entries;
}

/** Extracts the directories alone (every other path excluded) and reads which are opaque, the root included. */
async function opaqueDirectories(image: string, work: string, entries: readonly LayerEntry[], digest: string): Promise<LayerEntry[]> {
  const directories = ['', ...entries.filter((entry) => entry.kind === 'directory').map((entry) => entry.path)];
  const excluded = join(work, 'exclude');
  await writeFile(excluded, entries.filter((entry) => entry.kind !== 'directory').map((entry) => `${entry.path}\n`).join(''));
  const tree = join(work, 'directories');
  try {
    await runTool('unsquashfs', ['-no-progress', '-no-wildcards', '-d', tree, '-exclude-file', excluded, image]);
  } catch (error) {
    throw new BuildError('TOOL_FAILED', `squashfs layer ${digest}: its directories' xattrs (opaque markers) cannot be read here: ${(error as Error).message}`, undefined, { cause: error });
  }
  const hostPaths = directories.map((path) => join(tree, path));
  const xattrs = await readXattrs(hostPaths);
  return directories
    .filter((_, index) => overlayOpaqueNames.some((name) => xattrs.get(hostPaths[index] as string)?.get(name)?.toString() === 'y'))
    .map((path) => ({ path, kind: 'opaque' as const }));
}
