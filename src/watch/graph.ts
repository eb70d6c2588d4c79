import { inputKey } from './input-index.ts';

/** What one owner (a Stackerfile) consumes and publishes, as image references. */
export interface OwnerEdges {
  inputs: readonly string[];
  outputs: readonly string[];
}

/**
 * The cascade across owners: an owner that publishes a reference feeds every owner that uses it
 * as an input. References are compared as input keys (registry, repository, tag), so
 * `docker://reg/python3` and `reg/python3:latest` are one node. An owner that consumes its own
 * output is not a cycle: inside one recipe the plan orders layers and rejects real cycles.
 * Pure; cycles are computed on demand (Tarjan's strongly connected components).
 */
export class CascadeGraph {
  readonly #edges = new Map<string, { inputs: Set<string>; outputs: Set<string> }>();
  /** input key -> owners that consume it */
  readonly #consumers = new Map<string, Set<string>>();
  #cycles: string[][] | undefined;

  set(owner: string, edges: OwnerEdges): void {
    this.remove(owner);
    const entry = { inputs: keysOf(edges.inputs), outputs: keysOf(edges.outputs) };
    this.#edges.set(owner, entry);
    for (const key of entry.inputs) {
      const consumers = this.#consumers.get(key) ?? new Set<string>();
      consumers.add(owner);
      this.#consumers.set(key, consumers);
    }
    this.#cycles = undefined;
  }

  remove(owner: string): void {
    const entry = this.#edges.get(owner);
    if (entry === undefined) return;
    this.#edges.delete(owner);
    for (const key of entry.inputs) {
      const consumers = this.#consumers.get(key);
      consumers?.delete(owner);
      if (consumers?.size === 0) this.#consumers.delete(key);
    }
    this.#cycles = undefined;
  }

  /** The owners to check when `outputRef` was just published: its consumers, except its publishers. */
  dependentsOf(outputRef: string): string[] {
    const key = inputKey(outputRef);
    if (key === undefined) return [];
    return [...(this.#consumers.get(key) ?? [])].filter((owner) => !this.#edges.get(owner)?.outputs.has(key));
  }

  /** The owners fed directly by `owner`'s outputs. */
  successorsOf(owner: string): string[] {
    const successors = new Set<string>();
    for (const key of this.#edges.get(owner)?.outputs ?? []) {
      for (const consumer of this.#consumers.get(key) ?? []) if (consumer !== owner) successors.add(consumer);
    }
    return [...successors].sort();
  }

  /** Every cycle, as its sorted members; cycles sorted by their first member. */
  cycles(): string[][] {
    this.#cycles ??= stronglyConnected([...this.#edges.keys()].sort(), (owner) => this.successorsOf(owner))
      .filter((component) => component.length > 1)
      .map((component) => component.sort())
      .sort((a, b) => (a[0] ?? '').localeCompare(b[0] ?? ''));
    return this.#cycles;
  }
}

function keysOf(refs: readonly string[]): Set<string> {
  const keys = new Set<string>();
  for (const ref of refs) {
    const key = inputKey(ref);
    if (key !== undefined) keys.add(key);
  }
  return keys;
}

/**
 * Tarjan's algorithm, iterative so that a long chain of owners cannot overflow the stack.
 * Returns the components in reverse topological order.
 */
export function stronglyConnected(nodes: readonly string[], successors: (node: string) => readonly string[]): string[][] {
  const index = new Map<string, number>();
  const lowLink = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;

  for (const root of nodes) {
    if (index.has(root)) continue;
    const work: Array<{ node: string; successors: readonly string[]; position: number }> = [];
    const visit = (node: string) => {
      index.set(node, next);
      lowLink.set(node, next);
      next++;
      stack.push(node);
      onStack.add(node);
      work.push({ node, successors: successors(node), position: 0 });
    };
    visit(root);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const successor = frame.successors[frame.position++];
      if (successor !== undefined) {
        if (!index.has(successor)) visit(successor);
        else if (onStack.has(successor)) lowLink.set(frame.node, Math.min(lowLink.get(frame.node)!, index.get(successor)!));
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) lowLink.set(parent.node, Math.min(lowLink.get(parent.node)!, lowLink.get(frame.node)!));
      if (lowLink.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string | undefined;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        components.push(component);
      }
    }
  }
  return components;
}
