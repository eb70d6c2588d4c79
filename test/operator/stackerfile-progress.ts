// Following a namespace's Stackerfiles and their ImageBuilds while an operator works on them.
import type { CustomObjectsApi } from '@kubernetes/client-node';
import type { ImageBuild, Stackerfile } from '../../src/operator/kube.ts';
import { eventually } from '../cluster/harness.ts';

const api = { group: 'restack.dev', version: 'v1alpha1' };

/** `objects` is asked on each call, so a test may connect after making these. */
export function stackerfileProgress(objects: () => CustomObjectsApi, namespace: string) {
  const get = async (name: string) => (await objects().getNamespacedCustomObject({ ...api, namespace, plural: 'stackerfiles', name })) as Stackerfile;
  /** A Stackerfile's ImageBuilds, oldest first. */
  const builds = async (name: string) =>
    ((await objects().listNamespacedCustomObject({ ...api, namespace, plural: 'imagebuilds', labelSelector: `restack.dev/stackerfile=${name}` })) as { items: ImageBuild[] }).items.sort((a, b) =>
      (a.metadata?.creationTimestamp?.toString() ?? '').localeCompare(b.metadata?.creationTimestamp?.toString() ?? ''),
    );
  const condition = (sf: Stackerfile, type: string) => sf.status?.conditions?.find((c) => c.type === type);
  /** Ready on the latest ImageBuild, which `accept` approves; a timeout says what was seen last. */
  const readyAfter = async (name: string, accept: (build: ImageBuild, all: ImageBuild[]) => boolean) => {
    let seen = 'nothing yet';
    try {
      return await eventually(
        `${name} Ready after the expected ImageBuild`,
        async () => {
          const sf = await get(name);
          const all = await builds(name);
          const latest = all.find((b) => b.metadata?.name === sf.status?.latestImageBuild);
          const state = (['Ready', 'Reconciling', 'Stalled'] as const).map((type) => `${type}=${condition(sf, type)?.status}`).join(' ');
          seen = `${state} (${condition(sf, 'Ready')?.message}); builds: ${all.map((b) => `${b.spec.strategy}/${b.spec.reason}/${b.status?.phase}${b.status?.message === undefined ? '' : `: ${b.status.message}`}`).join(', ')}`;
          return condition(sf, 'Ready')?.status === 'True' && latest !== undefined && accept(latest, all) ? { sf, latest, all } : undefined;
        },
        240_000,
      );
    } catch (error) {
      throw new Error(`${error instanceof Error ? error.message : String(error)}; last seen: ${seen}`);
    }
  };
  return { get, builds, condition, readyAfter };
}
