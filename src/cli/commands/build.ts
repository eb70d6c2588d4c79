import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { Option } from 'commander';
import { sourceDateEpochFrom } from '../../build/layer-writer.ts';
import type { StorageChoice } from '../../build/storage/open.ts';
import { buildRecipes, type LayerType } from '../../engine/build.ts';
import { LayerBuildError } from '../../engine/build/errors.ts';
import { describeEvent, summarizeOutputs, type BuildEvent } from '../../engine/build/events.ts';
import { encodeResultMessage, errorResult, resultOutputs, type ResultMessage } from '../../engine/build/result-message.ts';
import { planRecipes } from '../../stackerfile/plan.ts';
import { describeError, UserError } from '../errors.ts';
import type { Output } from '../output.ts';
import { BuildProgress, progressReporter } from '../progress.ts';
import type { RegisterCommand } from './index.ts';
import { addRecipeOptions, loadAndReport, type RecipeOptions } from './recipe-options.ts';
import { addRecordKeyOptions, recordKeyFrom, type RecordKeyOptions } from './record-key-options.ts';
import { addSigningOptions, signingFrom, type SigningOptions } from './signing-options.ts';
import { addStoreOptions, referenceOpener, type StoreOptions } from './store-options.ts';

interface BuildOptions extends RecipeOptions, StoreOptions, SigningOptions, RecordKeyOptions {
  ociDir: string;
  rootsDir: string;
  storage: StorageChoice;
  layerType: LayerType;
  cache: boolean;
  push?: string;
  cacheRepo?: string;
  tag: string[];
  json?: boolean;
  shellFail?: boolean;
  terminationLog?: string;
  recipeDirOnly?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

type ErrorEvent = Extract<BuildEvent, { event: 'error' }>;

/** The failure as an `error` event (for --json) and as text for a person. */
function describeFailure(error: unknown): { event: ErrorEvent; text: string; exitCode: number } {
  if (error instanceof LayerBuildError) {
    const kept = error.run?.keptRootfs === undefined ? '' : `\n  kept rootfs: ${error.run.keptRootfs}`;
    return {
      event: {
        event: 'error',
        layer: error.layer,
        code: error.code,
        message: error.message,
        ...(error.hint === undefined ? {} : { hint: error.hint }),
        ...(error.run === undefined ? {} : { exitCode: error.run.exitCode, lastLines: error.run.lastLines }),
        ...(error.run?.keptRootfs === undefined ? {} : { keptRootfs: error.run.keptRootfs }),
      },
      text: `error: ${error.message}${kept}${error.hint === undefined ? '' : `\n  hint: ${error.hint}`}`,
      exitCode: 1,
    };
  }
  const { text, exitCode } = describeError(error);
  const code = error instanceof Error && 'code' in error && typeof error.code === 'string' ? error.code : exitCode === 70 ? 'INTERNAL' : 'FAILED';
  const hint = error instanceof Error && 'hint' in error && typeof error.hint === 'string' ? error.hint : undefined;
  const message = error instanceof Error ? error.message : String(error);
  return { event: { event: 'error', code, message, ...(hint === undefined ? {} : { hint }) }, text, exitCode };
}

function eventPrinter(output: Output, json: boolean, err: (text: string) => void): (event: BuildEvent) => void {
  if (json) return (event) => output.out(JSON.stringify(event));
  return (event) => {
    const line = describeEvent(event);
    if (line !== undefined) err(line);
  };
}

export const registerBuild: RegisterCommand = (program, context) => {
  addRecordKeyOptions(addSigningOptions(addStoreOptions(addRecipeOptions(program.command('build').description('build every layer of a recipe into an OCI layout, without host privilege; optionally push')))))
    .option('--oci-dir <dir>', 'the output OCI layout (one ref per layer, named by the layer)', 'oci')
    .option('--roots-dir <dir>', 'build storage: rootfs trees, layer caches, the build cache index', '.restack/roots')
    .addOption(new Option('--storage <driver>', 'storage driver (auto: btrfs when --roots-dir is on btrfs, else overlay)').choices(['auto', 'btrfs', 'overlay']).default('auto'))
    .addOption(new Option('--layer-type <type>', 'format of the layers written').choices(['tar', 'squashfs']).default('tar'))
    .option('--no-cache', 'rebuild every layer instead of reusing unchanged ones')
    .option('--push <prefix>', 'after the build, push each image (not build_only) to PREFIX/<name>:<tag>, e.g. docker://host:5000/team')
    .option('--tag <tag>', 'a tag to push (repeatable; default latest)', collect, [])
    .option('--cache-repo <ref>', 'a registry repository shared as a build cache after the local one, e.g. docker://host/team/cache: layers found there are taken without a container, layers built are written there (best effort; docs/build-cache.md)')
    .option('--json', 'print one JSON event per line on stdout (layer-start, step, output, warning, layer-done, build-done, error)')
    .option('--shell-fail', 'when a run step fails, open a shell in its container')
    .option('--recipe-dir-only', 'read local files (imports, overlay_dirs, binds, tar bases) only inside the recipe\'s directory, symlinks followed, and no oci: layouts: how the operator builds a tenant\'s recipe')
    .option('--termination-log <path>', 'also write the result there, compact (under 4096 bytes): the build pod\'s termination message')
    .action(async (options: BuildOptions) => {
      const { output } = context();
      const json = options.json === true;
      const progress = new BuildProgress(Date.now());
      const reporter = progressReporter(output, json ? undefined : (now) => progress.describe(now));
      const printEvent = eventPrinter(output, json, reporter.err);
      let step: string | undefined;
      const print = (event: BuildEvent) => {
        if (event.event === 'step') step = event.step;
        progress.observe(event, Date.now());
        printEvent(event);
      };
      const record = async (result: ResultMessage) => {
        if (options.terminationLog !== undefined) await writeFile(options.terminationLog, encodeResultMessage(result));
      };
      const loaded = await loadAndReport(options, output, {
        STACKER_OCI_DIR: resolve(options.ociDir),
        STACKER_ROOTFS_DIR: resolve(options.rootsDir),
      });
      if (loaded === undefined) {
        const event: ErrorEvent = { event: 'error', code: 'RECIPE_INVALID', message: `${options.file} has errors (listed on stderr)`, hint: 'restack validate -f FILE lists them' };
        if (json) print(event);
        reporter.stop();
        await record(errorResult(event, undefined));
        return;
      }
      try {
        if (options.push !== undefined && !options.push.startsWith('docker://')) {
          throw new UserError(`--push "${options.push}" is not a registry prefix`, 'write it as docker://host[:port]/prefix');
        }
        if (options.cacheRepo !== undefined && !options.cacheRepo.startsWith('docker://')) {
          throw new UserError(`--cache-repo "${options.cacheRepo}" is not a registry repository`, 'write it as docker://host[:port]/repository');
        }
        if (options.signKey !== undefined && options.push === undefined) throw new UserError('--sign-key signs what is pushed, and there is no --push', 'add --push docker://host[:port]/prefix');
        const signing = await signingFrom(options);
        const layerRecordKey = await recordKeyFrom(options, process.env, true, (message) => reporter.err(`warning: ${message}`));
        const open = referenceOpener(options);
        const openInsecure = referenceOpener({ ...options, insecure: true });
        const outputs = await buildRecipes({
          plan: planRecipes(loaded.recipes),
          recipes: loaded.recipes,
          ociDir: options.ociDir,
          rootsDir: options.rootsDir,
          storage: options.storage,
          layerType: options.layerType,
          noCache: !options.cache,
          ...(options.push === undefined ? {} : { push: { prefix: options.push, tags: options.tag.length === 0 ? ['latest'] : options.tag } }),
          ...(signing === undefined ? {} : { signing }),
          ...(layerRecordKey === undefined ? {} : { layerRecordKey }),
          ...(options.cacheRepo === undefined ? {} : { cacheRepository: options.cacheRepo }),
          shellOnFail: options.shellFail === true,
          recipeDirOnly: options.recipeDirOnly === true,
          sourceDateEpoch: sourceDateEpochFrom(process.env),
          hostEnvironment: process.env,
          open: (ref, insecure) => (insecure ? openInsecure : open)(ref),
          onEvent: print,
        });
        if (!json) output.out(summarizeOutputs(outputs));
        await record({ v: 1, outputs: resultOutputs(outputs) });
      } catch (error) {
        const failure = describeFailure(error);
        if (json) print(failure.event);
        reporter.err(failure.text);
        process.exitCode = failure.exitCode;
        await record(errorResult(failure.event, step));
      } finally {
        reporter.stop();
      }
    });
};
