import { randomBytes } from 'node:crypto';
import { readlinkSync } from 'node:fs';
import { mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { OciError } from './errors.ts';

export interface LockOptions {
  /** Give up waiting after this long. */
  timeoutMs?: number;
  /** A lock older than this is taken to be left by a crashed holder. The guarded work takes milliseconds. */
  staleMs?: number;
}

interface Owner {
  pid: number;
  host: string;
  /** `/proc/self/ns/pid` of the holder: containers of one pod share a hostname, not their pids. */
  pidNamespace?: string;
  nonce: string;
}

/** The one lock directory judged stale: its inode and its owner's nonce (none when it had no owner file yet). */
export interface JudgedLock {
  ino: number;
  nonce: string | undefined;
}

function pidNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid');
  } catch {
    return undefined;
  }
}

/** Holders inside this process queue here first, so they do not poll the directory against each other. */
const inProcessQueues = new Map<string, Promise<unknown>>();

/**
 * Runs `work` while holding a lock that also excludes other processes: the lock is a directory
 * (mkdir is atomic on every local filesystem) holding its owner's pid and host. A lock whose
 * owner process is gone, or that is older than `staleMs`, is broken.
 */
export async function withFileLock<T>(lockPath: string, work: () => Promise<T>, options: LockOptions = {}): Promise<T> {
  const previous = inProcessQueues.get(lockPath) ?? Promise.resolve();
  const run = previous.catch(() => undefined).then(async () => {
    const owner = await acquire(lockPath, options);
    try {
      return await work();
    } finally {
      await release(lockPath, owner);
    }
  });
  const tail = run.catch(() => undefined);
  inProcessQueues.set(lockPath, tail);
  void tail.then(() => {
    if (inProcessQueues.get(lockPath) === tail) inProcessQueues.delete(lockPath);
  });
  return run;
}

async function acquire(lockPath: string, options: LockOptions): Promise<Owner> {
  const timeoutMs = options.timeoutMs ?? 30_000;
  const staleMs = options.staleMs ?? 60_000;
  const namespace = pidNamespace();
  const owner: Owner = { pid: process.pid, host: hostname(), ...(namespace === undefined ? {} : { pidNamespace: namespace }), nonce: randomBytes(8).toString('hex') };
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    try {
      await mkdir(lockPath);
      await writeFile(join(lockPath, 'owner'), JSON.stringify(owner));
      return owner;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const stale = await staleLock(lockPath, staleMs);
    if (stale !== undefined) {
      await breakLock(lockPath, stale);
      continue;
    }
    if (Date.now() > deadline) {
      throw new OciError(
        'LAYOUT_LOCKED',
        `${lockPath}: still locked by another writer after ${timeoutMs} ms`,
        `if no restack or other writer is running, remove the directory ${lockPath}`,
      );
    }
    await sleep(Math.min(5 * 2 ** Math.min(attempt, 5), 100) * (0.5 + Math.random()));
  }
}

async function readOwner(lockPath: string): Promise<Owner | undefined> {
  try {
    return JSON.parse(await readFile(join(lockPath, 'owner'), 'utf8')) as Owner;
  } catch {
    // Missing or half-written: the holder is between mkdir and writing its owner file.
    return undefined;
  }
}

function processIsGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** The lock, if it is stale: older than `staleMs`, or held by a process of this machine and pid namespace that is gone. */
async function staleLock(lockPath: string, staleMs: number): Promise<JudgedLock | undefined> {
  let found: { ino: number; mtimeMs: number };
  try {
    found = await stat(lockPath);
  } catch {
    return undefined; // released meanwhile; the next mkdir will tell
  }
  const owner = await readOwner(lockPath);
  const judged = { ino: found.ino, nonce: owner?.nonce };
  if (Date.now() - found.mtimeMs > staleMs) return judged;
  // A pid means something only in the holder's own pid namespace.
  const ours = pidNamespace();
  const sameNamespace = owner !== undefined && owner.host === hostname() && ours !== undefined && owner.pidNamespace === ours;
  return sameNamespace && processIsGone(owner.pid) ? judged : undefined;
}

/**
 * Removes the lock that was judged stale, and only that one. Renaming first means that of several
 * processes breaking it only one removes it; but between the judgement and the rename the lock
 * may have been broken and taken afresh by someone else, so what was renamed is checked against
 * the judgement and, if it is another (live) lock, put back.
 */
export async function breakLock(lockPath: string, judged: JudgedLock): Promise<void> {
  const grave = `${lockPath}.stale-${randomBytes(6).toString('hex')}`;
  try {
    await rename(lockPath, grave);
  } catch {
    return;
  }
  const renamed = await stat(grave);
  const owner = await readOwner(grave);
  if (renamed.ino !== judged.ino || owner?.nonce !== judged.nonce) {
    await rename(grave, lockPath);
    return;
  }
  await rm(grave, { recursive: true, force: true });
}

async function release(lockPath: string, owner: Owner): Promise<void> {
  const current = await readOwner(lockPath);
  // Someone judged us stale and took over: their lock is not ours to remove.
  if (current?.nonce !== owner.nonce) return;
  const { ino } = await stat(lockPath);
  await breakLock(lockPath, { ino, nonce: owner.nonce });
}
