import type { Condition } from './resources.ts';

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/**
 * The conditions after setting `wanted`: a condition whose status did not change keeps its
 * lastTransitionTime (as metav1.Condition requires); others of other types are kept as they are.
 */
export function setConditions(current: readonly Condition[] | undefined, wanted: readonly ConditionInput[], generation: number | undefined, now: string): Condition[] {
  const result = [...(current ?? [])];
  for (const condition of wanted) {
    const index = result.findIndex((c) => c.type === condition.type);
    const previous = index < 0 ? undefined : result[index];
    const next: Condition = {
      ...condition,
      lastTransitionTime: previous !== undefined && previous.status === condition.status ? previous.lastTransitionTime : now,
      ...(generation === undefined ? {} : { observedGeneration: generation }),
    };
    if (index < 0) result.push(next);
    else result[index] = next;
  }
  return result;
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** The three kstatus conditions of a Stackerfile for one state of it. */
export function kstatus(state: 'Ready' | 'Reconciling' | 'Stalled', reason: string, message: string): ConditionInput[] {
  return [
    { type: 'Ready', status: state === 'Ready' ? 'True' : 'False', reason, message },
    { type: 'Reconciling', status: state === 'Reconciling' ? 'True' : 'False', reason, message },
    { type: 'Stalled', status: state === 'Stalled' ? 'True' : 'False', reason, message },
  ];
}
