import { CustomObjectsApi } from '@kubernetes/client-node';
import { matchingEntries, scanRegistry, type InventoryEntry } from '../../engine/inventory.ts';
import { parseReference, parseRegistryReference } from '../../oci/reference.ts';
import { RegistryStore } from '../../oci/registry/store.ts';
import { group, stackerfileStatusSchema, version } from '../../operator/resources.ts';
import { UserError } from '../errors.ts';
import { positiveInteger } from '../flag-values.ts';
import { loadKubeConfig } from '../kubeconfig.ts';
import { formatTable, printJson } from '../output.ts';
import type { RegisterCommand } from './index.ts';
import { addStoreOptions, referenceOpener, type StoreOptions } from './store-options.ts';

interface WhichOptions extends StoreOptions {
  registry?: string;
  cluster?: boolean;
  concurrency: string;
  json?: boolean;
}

/** Every image of the registry under the prefix, with its inputs from provenance. */
async function registryInventory(prefix: string, options: WhichOptions): Promise<InventoryEntry[]> {
  const parsed = parseRegistryReference(`${prefix.replace(/\/+$/, '')}/x`);
  const path = parsed.repository.slice(0, -'x'.length);
  const open = referenceOpener(options);
  const { store } = open(`docker://${parsed.registry}/${path}x`);
  if (!(store instanceof RegistryStore)) throw new UserError(`--registry "${prefix}" is not a registry`, 'write it as docker://host[:port][/prefix]');
  const concurrency = positiveInteger('--concurrency', options.concurrency, 8);
  return scanRegistry({
    repositories: (await store.listRepositories()).filter((repository) => repository.startsWith(path)),
    open: (repository, tag) => open(`docker://${parsed.registry}/${repository}:${tag}`),
    concurrency,
  });
}

/** Every Stackerfile's published images with their inputs (status.images[].inputs), in every namespace. */
async function clusterInventory(): Promise<InventoryEntry[]> {
  const kubeConfig = loadKubeConfig();
  const list = (await kubeConfig.makeApiClient(CustomObjectsApi).listClusterCustomObject({ group, version, plural: 'stackerfiles' })) as { items?: { status?: unknown }[] };
  return (list.items ?? []).flatMap((item) => {
    const status = stackerfileStatusSchema.safeParse(item.status ?? {});
    if (!status.success) return [];
    return (status.data.images ?? []).flatMap((image) =>
      (image.inputs ?? []).map((input) => ({ image: image.ref, digest: image.digest, input: input.ref, inputDigest: input.digest ?? '', role: input.role })),
    );
  });
}

export const registerWhich: RegisterCommand = (program, context) => {
  addStoreOptions(
    program
      .command('which')
      .description('list the images that contain an input (a base or an applied dependency), optionally at one digest')
      .argument('<ref>', 'the input: docker://host/repo[@sha256:...] (any tag of the repository matches; a digest narrows it)'),
  )
    .option('--registry <prefix>', 'scan the images under docker://host[:port][/prefix] by their provenance (catalog, tags, manifests; no layers)')
    .option('--cluster', "read every Stackerfile's status.images[].inputs, in every namespace (kubeconfig as kubectl finds it)")
    .option('--concurrency <n>', 'registry requests at once while scanning', '8')
    .option('--json', 'print the rows as a JSON array')
    .action(async (ref: string, options: WhichOptions) => {
      const { output } = context();
      if ((options.registry === undefined) === (options.cluster !== true)) {
        throw new UserError('say where to look: --registry docker://host/prefix or --cluster (one of them)', 'e.g. restack which docker://host/python3 --registry docker://host/team');
      }
      const query = parseReference(ref);
      const inventory = options.registry === undefined ? await clusterInventory() : await registryInventory(options.registry, options);
      const rows = matchingEntries(inventory, query);
      if (options.json === true) {
        printJson(output, rows);
        return;
      }
      if (rows.length === 0) {
        output.err(`no image contains ${ref}`);
        return;
      }
      output.out(formatTable(['IMAGE', 'DIGEST', 'INPUT', 'INPUT DIGEST', 'ROLE'], rows.map((row) => [row.image, row.digest.slice(0, 19), row.input, row.inputDigest.slice(0, 19), row.role])));
    });
};
