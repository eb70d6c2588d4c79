import { homedir } from 'node:os';
import { join } from 'node:path';
import { LayerChangesCache } from '../../engine/layer-changes.ts';
import { swapDependency } from '../../engine/swap.ts';
import { printJson } from '../output.ts';
import type { RegisterCommand } from './index.ts';
import { addRecordKeyOptions, recordKeyFrom, type RecordKeyOptions } from './record-key-options.ts';
import { addSigningOptions, signingFrom, type SigningOptions } from './signing-options.ts';
import { addStoreOptions, referenceOpener, type StoreOptions } from './store-options.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

export function layerCacheDirectory(): string {
  return join(process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache'), 'restack', 'layer-changes');
}

export const registerSwap: RegisterCommand = (program, context) => {
  addRecordKeyOptions(addSigningOptions(addStoreOptions(
    program
      .command('swap')
      .description("replace the layers one applied dependency contributed to an image by those of the dependency's current version, without rebuilding")
      .argument('<ref>', 'the image to update, e.g. docker://host/A:latest (its tag moves last)'),
  )))
    .requiredOption('--dependency <ref>', 'the dependency at its new version, e.g. docker://host/python3:latest')
    .option('--tag <tag>', 'also point this tag of the image repository at the result (repeatable)', collect, [])
    .option('--dry-run', 'plan and check, print the plan, change nothing')
    .option('--allow-overlap', 'swap even if the dependency changes files that layers above it changed')
    .option('--json', 'print the outcome as JSON')
    .action(async (ref: string, options: StoreOptions & SigningOptions & RecordKeyOptions & { dependency: string; tag: string[]; dryRun?: boolean; allowOverlap?: boolean; json?: boolean }) => {
      const { output, logger } = context();
      const open = referenceOpener(options);
      const target = open(ref);
      const dependency = open(options.dependency);
      const signing = await signingFrom(options);
      const layerRecordKey = await recordKeyFrom(options, process.env, false);
      const outcome = await swapDependency({
        ...(signing === undefined ? {} : { signing }),
        ...(layerRecordKey === undefined ? {} : { layerRecordKey }),
        target,
        dependency,
        extraTags: options.tag,
        dryRun: options.dryRun === true,
        allowOverlap: options.allowOverlap === true,
        layerChanges: new LayerChangesCache(layerCacheDirectory()),
        onProgress: (message) => logger.info(message),
      });
      const requests = [target.store, dependency.store].flatMap((store) => ('stats' in store ? [store.stats] : []));
      if (options.json === true) {
        printJson(output, { ...outcome, requests: requests[0] });
      } else {
        output.out(`${outcome.status}: ${outcome.target}`);
        output.out(`  before ${outcome.before}`);
        output.out(`  after  ${outcome.after}`);
        for (const platform of outcome.platforms) {
          output.out(`  ${platform.platform}: ${options.dependency} ${platform.dependencyBefore.slice(0, 19)} -> ${platform.dependencyAfter.slice(0, 19)}`);
          output.out(`    layers ${platform.oldSlice.map((d) => d.slice(7, 19)).join(',')} -> ${platform.newSlice.map((d) => d.slice(7, 19)).join(',')}`);
          for (const overlap of platform.safety.overlaps) output.out(`    overlap ${overlap.path}`);
          for (const missing of platform.safety.unavailable) output.out(`    not analysed ${missing.digest.slice(0, 19)}: ${missing.reason}`);
        }
        if (outcome.signing !== undefined) output.out(`  signed ${outcome.signing.tags.join(' ')} (signature ${outcome.signing.signature}, attestation ${outcome.signing.attestation})`);
        if (outcome.tagsMoved.length > 0) output.out(`  tags ${outcome.tagsMoved.join(' ')}`);
        output.out(`  blobs: ${outcome.transfers.mounted} mounted, ${outcome.transfers.present} present, ${outcome.transfers.uploaded} uploaded`);
        if (requests.length > 0) output.out(`  requests: ${JSON.stringify(requests[0])}`);
      }
      if (outcome.refusal !== undefined) {
        output.err(`refused (${outcome.refusal.reason}): ${outcome.refusal.message}`);
        process.exitCode = 3;
      }
    });
};
