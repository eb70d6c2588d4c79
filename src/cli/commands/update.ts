import { resolve } from 'node:path';
import { Option } from 'commander';
import cron from 'node-cron';
import { sourceDateEpochFrom } from '../../build/layer-writer.ts';
import type { StorageChoice } from '../../build/storage/open.ts';
import { describeEvent } from '../../engine/build/events.ts';
import { LayerChangesCache } from '../../engine/layer-changes.ts';
import { updateRecipes, type UpdateEvent, type UpdateResult } from '../../engine/update.ts';
import { planRecipes } from '../../stackerfile/plan.ts';
import { decide, defaultPolicy, rebuildAfterRefusal, type ApplyPolicy, type BasePolicy } from '../../watch/decide.ts';
import { describeError, UserError } from '../errors.ts';
import type { Output } from '../output.ts';
import { progressReporter, UpdateProgress } from '../progress.ts';
import type { RegisterCommand } from './index.ts';
import { addRecipeOptions, loadAndReport, type RecipeOptions } from './recipe-options.ts';
import { addRecordKeyOptions, recordKeyFrom, type RecordKeyOptions } from './record-key-options.ts';
import { addSigningOptions, signingFrom, type SigningOptions } from './signing-options.ts';
import { addStoreOptions, referenceOpener, type StoreOptions } from './store-options.ts';
import { layerCacheDirectory } from './swap.ts';

interface UpdateOptions extends RecipeOptions, StoreOptions, SigningOptions, RecordKeyOptions {
  push: string;
  tag: string[];
  ociDir: string;
  rootsDir: string;
  storage: StorageChoice;
  onApplyUpdate: ApplyPolicy;
  onBaseUpdate: BasePolicy;
  watch?: boolean;
  schedule: string;
  json?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];
const defaultSchedule = '*/5 * * * *';

/** One line per image: what was done and why. */
export function describeResult(result: UpdateResult): string {
  const digests = result.action === 'nothing' ? result.after.slice(0, 19) : `${result.before?.slice(0, 19) ?? 'none'} -> ${result.after.slice(0, 19)}`;
  const action = result.reason === undefined ? result.action : `${result.action} (${result.reason})`;
  return `${result.image}: ${action}: ${result.message} [${digests}]`;
}

/** Prints events: JSON lines on stdout, or results on stdout and the rest through `err` (stderr, under a status line on a terminal). */
function eventPrinter(output: Output, json: boolean, err: (text: string) => void): (event: UpdateEvent) => void {
  if (json) return (event) => output.out(JSON.stringify(event));
  return (event) => {
    if (event.event === 'image-done') output.out(describeResult(event));
    else if (event.event === 'decision') err(`${event.image}: ${event.action}${event.reason === undefined ? '' : ` (${event.reason})`}: ${event.message}`);
    else if (event.event !== 'update-done') {
      const line = describeEvent(event);
      if (line !== undefined) err(line);
    }
  };
}

function checkPrefix(push: string): void {
  if (!push.startsWith('docker://') && !push.startsWith('oci:')) {
    throw new UserError(`--push "${push}" is neither a registry prefix nor an OCI layout`, 'write it as docker://host[:port]/prefix or oci:DIR');
  }
}

/** One pass over the recipe; failures are reported, never thrown, so --watch keeps going. Returns the exit code. */
async function updateOnce(options: UpdateOptions, output: Output): Promise<number> {
  const json = options.json === true;
  const loaded = await loadAndReport(options, output, { STACKER_OCI_DIR: resolve(options.ociDir), STACKER_ROOTFS_DIR: resolve(options.rootsDir) });
  if (loaded === undefined) {
    if (json) output.out(JSON.stringify({ event: 'error', code: 'RECIPE_INVALID', message: `${options.file} has errors (listed on stderr)`, hint: 'restack validate -f FILE lists them' }));
    return 1;
  }
  const plan = planRecipes(loaded.recipes);
  const progress = new UpdateProgress(plan.layers.length, Date.now());
  const reporter = progressReporter(output, json ? undefined : (now) => progress.describe(now));
  const printEvent = eventPrinter(output, json, reporter.err);
  const print = (event: UpdateEvent) => {
    progress.observe(event, Date.now());
    printEvent(event);
  };
  try {
    const open = referenceOpener(options);
    const openInsecure = referenceOpener({ ...options, insecure: true });
    const policy = { onApplyUpdate: options.onApplyUpdate, onBaseUpdate: options.onBaseUpdate };
    const signing = await signingFrom(options);
    const layerRecordKey = await recordKeyFrom(options, process.env, true, (message) => reporter.err(`warning: ${message}`));
    await updateRecipes({
      ...(signing === undefined ? {} : { signing }),
      ...(layerRecordKey === undefined ? {} : { layerRecordKey }),
      plan,
      recipes: loaded.recipes,
      prefix: options.push,
      tags: options.tag.length === 0 ? ['latest'] : options.tag,
      decider: { decide: (facts) => decide({ ...facts, policy }), afterRefusal: rebuildAfterRefusal },
      build: {
        ociDir: options.ociDir,
        rootsDir: options.rootsDir,
        storage: options.storage,
        layerType: 'tar',
        noCache: false,
        shellOnFail: false,
        sourceDateEpoch: sourceDateEpochFrom(process.env),
        hostEnvironment: process.env,
      },
      open: (ref, insecure) => (insecure ? openInsecure : open)(ref),
      layerChanges: new LayerChangesCache(layerCacheDirectory()),
      onEvent: print,
    });
    return 0;
  } catch (error) {
    const { text, exitCode } = describeError(error);
    if (json) {
      const code = error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : 'FAILED';
      print({ event: 'error', code, message: error instanceof Error ? error.message : String(error) });
    }
    reporter.err(text);
    return exitCode === 70 ? 70 : 1;
  } finally {
    reporter.stop();
  }
}

/** Runs a pass now and then on the schedule, one at a time, until SIGINT or SIGTERM; the pass under way finishes first. */
async function watch(options: UpdateOptions, output: Output): Promise<void> {
  let running: Promise<number> | undefined;
  // a pass that outlasts the schedule's period makes the next firing a no-op
  const pass = async () => {
    if (running !== undefined) return;
    running = updateOnce(options, output);
    await running.finally(() => (running = undefined));
  };
  const task = cron.schedule(options.schedule, pass);
  void pass();
  await new Promise<void>((stop) => {
    const onSignal = () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      output.err('stopping: waiting for the update under way');
      stop();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  await task.stop();
  await running;
  await task.destroy();
}

export const registerUpdate: RegisterCommand = (program, context) => {
  addRecordKeyOptions(addSigningOptions(addStoreOptions(
    addRecipeOptions(
      program
        .command('update')
        .description('bring the published images of a recipe up to date: swap a changed applied dependency in place, rebuild when a base or the recipe changed, else nothing')
        .addHelpText('after', '\nExit codes: 0 every image is current, 1 a failure (the images before it were updated), 2 bad usage.'),
    ),
  )))
    .requiredOption('--push <prefix>', 'where the images are published: docker://host[:port]/prefix (each at PREFIX/<name>:<tag>) or oci:DIR (a layout DIR/<name> per image)')
    .option('--tag <tag>', 'the tags the images carry (repeatable; default latest): the first is read, all are moved', collect, [])
    .option('--oci-dir <dir>', 'the OCI layout rebuilds are written to', 'oci')
    .option('--roots-dir <dir>', 'build storage: rootfs trees, layer caches, the build cache index', '.restack/roots')
    .addOption(new Option('--storage <driver>', 'storage driver for rebuilds').choices(['auto', 'btrfs', 'overlay']).default('auto'))
    .addOption(new Option('--on-apply-update <policy>', 'when an applied dependency changed').choices(['Swap', 'Rebuild']).default(defaultPolicy.onApplyUpdate))
    .addOption(new Option('--on-base-update <policy>', 'when a base changed').choices(['Rebuild', 'Ignore']).default(defaultPolicy.onBaseUpdate))
    .option('--watch', 'keep running: update again on --schedule until Ctrl-C')
    .option('--schedule <cron>', 'when --watch updates (cron, seconds allowed)', defaultSchedule)
    .option('--json', 'print one JSON event per line on stdout (decision, image-done, update-done, error, and the build events of rebuilds)')
    .action(async (options: UpdateOptions) => {
      const { output } = context();
      checkPrefix(options.push);
      if (!cron.validate(options.schedule)) throw new UserError(`--schedule "${options.schedule}" is not a cron expression`, 'write five or six fields, e.g. "*/5 * * * *" (every 5 minutes) or "*/30 * * * * *" (every 30 seconds)');
      if (options.watch === true) await watch(options, output);
      else {
        const exitCode = await updateOnce(options, output);
        if (exitCode !== 0) process.exitCode = exitCode;
      }
    });
};
