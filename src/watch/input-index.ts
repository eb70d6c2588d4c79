import { normalize } from 'node:path';
import { formatReference, parseReference, type ImageReference } from '../oci/reference.ts';

export type InputRole = 'from' | 'apply';

/** One input as an owner (a Stackerfile) declares it: the reference as written and its role. */
export interface OwnedInput {
  ref: string;
  role: InputRole;
}

/**
 * A watched input: one per registry host, repository, tag and credentials, whatever the number of
 * owners. Owners that name no credentials share the checks made with the process's own.
 */
export interface IndexedInput {
  key: string;
  /** Without digest: what a check resolves. */
  ref: ImageReference;
  /** Whose registry credentials a check uses (such as a Secret's namespace/name); the process's own when absent. */
  credentials?: string;
}

/** The index key of an input checked with these credentials: the input's own key for the process's credentials. */
export function checkKey(inputKey: string, credentials: string | undefined): string {
  return credentials === undefined ? inputKey : `${inputKey} with ${credentials}`;
}

/** What `record` learnt: whether the digest differs from the last one seen (the first sighting counts). */
export interface RecordedDigest {
  changed: boolean;
  previous: string | undefined;
}

/**
 * The identity of an input: `docker://host/repository:tag` (Docker Hub as docker.io, default tag
 * `latest`) or `oci:DIR:TAG`; undefined for a reference pinned by digest alone, which cannot change.
 * Throws the reference parser's error (naming the input) for a malformed reference.
 */
export function inputKey(ref: string | ImageReference): string | undefined {
  return indexedInput(ref)?.key;
}

/** The input a reference watches: its tag, without digest; undefined when pinned by digest alone. */
export function indexedInput(ref: string | ImageReference): IndexedInput | undefined {
  const parsed = typeof ref === 'string' ? parseReference(ref) : ref;
  if (parsed.tag === undefined) return undefined;
  const watched: ImageReference =
    parsed.transport === 'oci'
      ? { transport: 'oci', dir: normalize(parsed.dir), tag: parsed.tag }
      : { transport: 'docker', registry: parsed.registry, repository: parsed.repository, tag: parsed.tag };
  return { key: formatReference(watched), ref: watched };
}

interface OwnerEntry {
  schedule: string;
  inputs: readonly OwnedInput[];
  credentials: string | undefined;
  keys: ReadonlySet<string>;
}

/** Counts one more user of `key`. */
function countIn<K>(counts: Map<K, number>, key: K): void {
  counts.set(key, (counts.get(key) ?? 0) + 1);
}

/** Counts one user of `key` fewer, forgetting it at none. */
function uncountIn<K>(counts: Map<K, number>, key: K): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left === 0) counts.delete(key);
  else counts.set(key, left);
}

interface InputEntry {
  input: IndexedInput;
  /** The input's key whatever the credentials (`inputKey`): what `checksOf` is asked with. */
  inputKey: string;
  owners: Set<string>;
  digest: string | undefined;
}

/**
 * Every input of every owner (an opaque key, such as a Stackerfile's "namespace/name"), kept
 * once per registry, repository and tag, with the last digest seen of each. Pure bookkeeping:
 * the poller does the I/O.
 */
export class InputIndex {
  readonly #owners = new Map<string, OwnerEntry>();
  readonly #inputs = new Map<string, InputEntry>();
  /** Per input key (registry, repository, tag): the keys it is checked under, one per credentials. */
  readonly #checks = new Map<string, Set<string>>();
  /** Per schedule expression: how many owners use it, so `schedules()` does not walk every owner (called on each `set`). */
  readonly #scheduleOwners = new Map<string, number>();
  /** Per schedule expression: the keys its owners watch, each with how many of them do, so a tick's `due` does not walk every owner. */
  readonly #scheduleKeys = new Map<string, Map<string, number>>();

  /**
   * Declares (or replaces) what an owner watches, on which schedule and with whose registry
   * credentials (see IndexedInput). Digest-pinned inputs are skipped.
   */
  set(owner: string, inputs: readonly OwnedInput[], schedule: string, credentials?: string): void {
    const resolved = new Map<string, { input: IndexedInput; inputKey: string }>();
    for (const { ref } of inputs) {
      const input = indexedInput(ref);
      if (input === undefined) continue;
      const key = checkKey(input.key, credentials);
      resolved.set(key, { input: credentials === undefined ? input : { ...input, key, credentials }, inputKey: input.key });
    }
    this.remove(owner);
    this.#owners.set(owner, { schedule, inputs: [...inputs], credentials, keys: new Set(resolved.keys()) });
    countIn(this.#scheduleOwners, schedule);
    const due = this.#scheduleKeys.get(schedule) ?? new Map<string, number>();
    this.#scheduleKeys.set(schedule, due);
    for (const [key, { input, inputKey }] of resolved) {
      countIn(due, key);
      const entry = this.#inputs.get(key) ?? { input, inputKey, owners: new Set<string>(), digest: undefined };
      entry.owners.add(owner);
      this.#inputs.set(key, entry);
      this.#checks.set(inputKey, (this.#checks.get(inputKey) ?? new Set()).add(key));
    }
  }

  /** Forgets an owner; inputs nobody else watches are dropped with their last digest. */
  remove(owner: string): void {
    const entry = this.#owners.get(owner);
    if (entry === undefined) return;
    this.#owners.delete(owner);
    uncountIn(this.#scheduleOwners, entry.schedule);
    const due = this.#scheduleKeys.get(entry.schedule);
    if (due !== undefined) for (const key of entry.keys) uncountIn(due, key);
    if (due?.size === 0) this.#scheduleKeys.delete(entry.schedule);
    for (const key of entry.keys) {
      const input = this.#inputs.get(key);
      input?.owners.delete(owner);
      if (input === undefined || input.owners.size > 0) continue;
      this.#inputs.delete(key);
      const checks = this.#checks.get(input.inputKey);
      checks?.delete(key);
      if (checks?.size === 0) this.#checks.delete(input.inputKey);
    }
  }

  /** The keys an input (registry, repository and tag, as `inputKey` gives) is checked under: one per credentials in use. */
  checksOf(inputKey: string): string[] {
    return [...(this.#checks.get(inputKey) ?? [])];
  }

  /** The key under which the owner's input `ref` is checked; undefined when it is not watched (pinned by digest). */
  keyFor(owner: string, ref: string): string | undefined {
    const key = inputKey(ref);
    return key === undefined ? undefined : checkKey(key, this.#owners.get(owner)?.credentials);
  }

  /** Every watched input's key. */
  keys(): string[] {
    return [...this.#inputs.keys()];
  }

  has(key: string): boolean {
    return this.#inputs.has(key);
  }

  get size(): number {
    return this.#inputs.size;
  }

  get(key: string): IndexedInput | undefined {
    return this.#inputs.get(key)?.input;
  }

  ownersOf(key: string): string[] {
    return [...(this.#inputs.get(key)?.owners ?? [])];
  }

  /** The owner's inputs as it declared them (references as written). */
  inputsOf(owner: string): readonly OwnedInput[] {
    return this.#owners.get(owner)?.inputs ?? [];
  }

  /** The keys of the owner's watched inputs. */
  keysOf(owner: string): string[] {
    return [...(this.#owners.get(owner)?.keys ?? [])];
  }

  scheduleOf(owner: string): string | undefined {
    return this.#owners.get(owner)?.schedule;
  }

  /** Every distinct schedule expression in use. */
  schedules(): string[] {
    return [...this.#scheduleOwners.keys()];
  }

  /** The unique inputs of the owners on this schedule: what one tick of it checks. */
  due(schedule: string): IndexedInput[] {
    return [...(this.#scheduleKeys.get(schedule)?.keys() ?? [])].flatMap((key) => this.#inputs.get(key)?.input ?? []);
  }

  digestOf(key: string): string | undefined {
    return this.#inputs.get(key)?.digest;
  }

  /** Remembers the digest a check saw; an input no longer watched is ignored (never a change). */
  record(key: string, digest: string): RecordedDigest {
    const entry = this.#inputs.get(key);
    if (entry === undefined) return { changed: false, previous: undefined };
    const previous = entry.digest;
    entry.digest = digest;
    return { changed: previous !== digest, previous };
  }
}
