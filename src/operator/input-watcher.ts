/** What a Stackerfile's published images are made from and publish, for the watcher. */
export interface WatchedStackerfile {
  inputs: readonly { ref: string; role: 'from' | 'apply' }[];
  /** Where its images are published: inputs of other Stackerfiles (the cascade). */
  outputs: readonly string[];
  /** spec.updates.schedule (cron, seconds allowed). */
  schedule: string;
  /** The Secret (namespace/name) whose registry credentials check the inputs: spec.output.pushSecretRef. */
  credentials?: string;
}

/** Whether the registries of a Stackerfile's inputs answered the last check. */
export interface InputProblems {
  ok: boolean;
  reason: string;
  message: string;
}

/**
 * The Stackerfile controller's view of src/watch/: it says what each Stackerfile watches and
 * reads the digests the latest checks saw; the watcher re-queues a Stackerfile when one of its
 * inputs changes.
 */
export interface InputWatcher {
  watch(owner: string, watched: WatchedStackerfile): void;
  forget(owner: string): void;
  /** The digest each input of the owner had at the latest check; inputs not checked yet are absent. */
  currentDigests(owner: string): ReadonlyMap<string, string>;
  /**
   * Whether an input of the owner has had no check yet (neither a digest nor an error): until it
   * has, whether the owner's images are up to date is not known. The watcher re-queues the owner
   * when that check ends.
   */
  awaitingCheck(owner: string): boolean;
  /** Unreachable registries or a dependency cycle; undefined before the first check. */
  problems(owner: string): InputProblems | undefined;
  /** These references were just published: whoever uses them is checked now, not at the next poll. */
  published(refs: readonly string[]): void;
}
