import { decide, rebuildAfterRefusal, type DependencyChange, type UpdatePolicy } from '../watch/decide.ts';
import type { ImageBuild, Stackerfile } from './kube.ts';
import { Backoff, type BackoffPolicy } from './backoff.ts';
import { imageBuildStem, shortHash } from './names.ts';
import type { PlannedBuildSpec, StackerfileStatus } from './resources.ts';

type PublishedImage = NonNullable<StackerfileStatus['images']>[number];

/** What should happen next to a Stackerfile whose images are published: nothing, or one more ImageBuild. */
export type UpdatePlan =
  | { action: 'nothing'; message: string }
  | { action: 'build'; name: string; spec: PlannedBuildSpec; event: string };

export const rebuildAnnotation = 'restack.dev/rebuild';

/**
 * A name that is the same after a restart (so a build is never created twice) and new along the
 * history (it chains the previous build), so an input that returns to an earlier digest is still
 * acted on.
 */
export function updateBuildName(stackerfile: string, previous: string, kind: 'swap' | 'build', what: string): string {
  return `${imageBuildStem(stackerfile)}-${kind}-${shortHash(`${previous}\0${what}`)}`;
}

function recorded(image: PublishedImage) {
  const inputs = image.inputs ?? [];
  const withDigest = (role: 'from' | 'apply') => inputs.filter((i) => i.role === role && i.digest !== undefined).map((i) => ({ ref: i.ref, digest: i.digest ?? '' }));
  return { base: withDigest('from')[0] ?? null, applied: withDigest('apply'), recipe: undefined };
}

/** A swap of this dependency into this image that `latest` refused: a rebuild follows instead. */
function refusalFor(latest: ImageBuild | undefined, image: string, change: DependencyChange) {
  return latest?.spec.strategy === 'Swap'
    ? latest.status?.checks?.find((c) => c.result === 'Refused' && c.image === image && c.dependency === change.ref && c.to === change.to)
    : undefined;
}

/** spec.previous of the ImageBuild that follows `latest`: the chain that finds builds the Stackerfile's status does not record yet. */
export function following(latest: ImageBuild | undefined): { previous?: string } {
  const name = latest?.metadata?.name;
  return name === undefined || name === '' ? {} : { previous: name };
}

/** A rebuild the restack.dev/rebuild annotation asks for with a value not acted on yet; also after a failed build. */
export function manualRebuild(stackerfile: Stackerfile, latest: ImageBuild | undefined): Extract<UpdatePlan, { action: 'build' }> | undefined {
  const requested = stackerfile.metadata?.annotations?.[rebuildAnnotation];
  if (requested === undefined || requested === '' || requested === stackerfile.status?.lastRebuildRequest) return undefined;
  return {
    action: 'build',
    name: updateBuildName(stackerfile.metadata?.name ?? '', latest?.metadata?.name ?? '', 'build', `manual\0${requested}`),
    spec: { strategy: 'Build', reason: 'Manual', cause: `${rebuildAnnotation}: ${requested}`, ...following(latest) },
    event: `rebuild requested by the ${rebuildAnnotation} annotation (${requested})`,
  };
}

/** How failures that may pass on their own are tried again: waits doubling from initialMs up to maxMs, `attempts` tries in all. */
export interface RetryPolicy extends BackoffPolicy {
  attempts: number;
}

export const defaultBuildRetry: RetryPolicy = { initialMs: 30_000, maxMs: 600_000, attempts: 5 };

/**
 * After a failed build that may pass on its own (status.retryable): the same work again, as the
 * next attempt, once the backoff since the failure is over; `wait` until then; undefined when it
 * is not retryable or the attempts are used up.
 */
export function retryAfterFailure(stackerfile: Stackerfile, failed: ImageBuild, policy: RetryPolicy, now: number): UpdatePlan | { action: 'wait'; ms: number; message: string } | undefined {
  const attempt = failed.spec.attempt ?? 1;
  if (failed.status?.retryable !== true || attempt >= policy.attempts) return undefined;
  const due = Date.parse(failed.status.completionTime ?? '') + Backoff.bound(policy, attempt);
  const name = failed.metadata?.name ?? '';
  if (Number.isFinite(due) && now < due) {
    return { action: 'wait', ms: due - now, message: `ImageBuild ${name} failed and may pass on its own: attempt ${attempt + 1} of ${policy.attempts} starts at ${new Date(due).toISOString()}; ${failed.status.message ?? ''}` };
  }
  const { strategy, reason, cause, inputs, images } = failed.spec;
  return {
    action: 'build',
    name: updateBuildName(stackerfile.metadata?.name ?? '', name, strategy === 'Swap' ? 'swap' : 'build', `retry\0${attempt + 1}`),
    spec: { strategy, reason, attempt: attempt + 1, ...following(failed), ...(cause === undefined ? {} : { cause }), ...(inputs === undefined ? {} : { inputs }), ...(images === undefined ? {} : { images }) },
    event: `attempt ${attempt + 1} of ${policy.attempts} after ImageBuild ${name} failed: ${failed.status.message?.split('\n')[0] ?? ''}`,
  };
}

/**
 * Decides the next ImageBuild of a Stackerfile whose latest ImageBuild finished: a manual rebuild
 * requested by annotation, a rebuild when a base changed (or a swap was refused, or the policy
 * says so), else one swap of every changed applied input into every image that applies it.
 */
export function planUpdate(stackerfile: Stackerfile, latest: ImageBuild | undefined, current: ReadonlyMap<string, string>): UpdatePlan {
  const name = stackerfile.metadata?.name ?? '';
  const previous = latest?.metadata?.name ?? '';
  const manual = manualRebuild(stackerfile, latest);
  if (manual !== undefined) return manual;
  const policy: UpdatePolicy = {
    onApplyUpdate: stackerfile.spec.updates?.onApplyUpdate ?? 'Swap',
    onBaseUpdate: stackerfile.spec.updates?.onBaseUpdate ?? 'Rebuild',
  };
  const rebuilds: { reason: 'BaseUpdate' | 'ApplyUpdate'; message: string }[] = [];
  const swaps: { image: string; changes: DependencyChange[] }[] = [];
  for (const image of stackerfile.status?.images ?? []) {
    const decision = decide({ name: image.name, recorded: recorded(image), recipe: '', current, policy });
    if (decision.action === 'rebuild') rebuilds.push({ reason: decision.reason === 'BaseUpdate' ? 'BaseUpdate' : 'ApplyUpdate', message: `${image.name}: ${decision.message}` });
    if (decision.action !== 'swap') continue;
    const refused = decision.dependencies.flatMap((change) => {
      const refusal = refusalFor(latest, image.name, change);
      return refusal === undefined ? [] : [rebuildAfterRefusal(change, { reason: refusal.reason ?? 'Refused', message: refusal.message })];
    });
    if (refused.length > 0) rebuilds.push(...refused.map((r) => ({ reason: 'ApplyUpdate' as const, message: `${image.name}: ${r.message}` })));
    else swaps.push({ image: image.name, changes: decision.dependencies });
  }
  if (rebuilds.length > 0) {
    const reason = rebuilds.some((r) => r.reason === 'BaseUpdate') ? 'BaseUpdate' : 'ApplyUpdate';
    const cause = rebuilds.map((r) => r.message).join('\n');
    return { action: 'build', name: updateBuildName(name, previous, 'build', cause), spec: { strategy: 'Build', reason, cause, ...following(latest) }, event: `rebuild (${reason}): ${cause}` };
  }
  if (swaps.length === 0) return { action: 'nothing', message: 'every input is at the digest its images were made from' };
  const inputs = new Map(swaps.flatMap((s) => s.changes).map((change) => [`${change.ref}@${change.to}`, { ref: change.ref, role: 'apply' as const, digest: change.to }]));
  const images = swaps.map((s) => s.image);
  const cause = swaps.map((s) => `${s.image}: ${s.changes.map((c) => `${c.ref} ${c.from.slice(0, 19)} -> ${c.to.slice(0, 19)}`).join(', ')}`).join('\n');
  return {
    action: 'build',
    name: updateBuildName(name, previous, 'swap', [...inputs.keys()].sort().join('\n')),
    spec: { strategy: 'Swap', reason: 'ApplyUpdate', inputs: [...inputs.values()], images, cause, ...following(latest) },
    event: `swap (ApplyUpdate): ${cause}`,
  };
}
