import { composeToStore } from '../../engine/compose.ts';
import type { Platform } from '../../oci/types.ts';
import { UserError } from '../errors.ts';
import type { RegisterCommand } from './index.ts';
import { addStoreOptions, referenceOpener, type StoreOptions } from './store-options.ts';

const collect = (value: string, previous: string[]) => [...previous, value];

function parsePlatform(text: string | undefined): Platform | undefined {
  if (text === undefined) return undefined;
  const [os, architecture, variant] = text.split('/');
  if (!os || !architecture) throw new UserError(`--platform "${text}" is not OS/ARCH[/VARIANT]`, 'for example --platform linux/amd64');
  return { os, architecture, ...(variant === undefined ? {} : { variant }) };
}

export const registerCompose: RegisterCommand = (program, context) => {
  addStoreOptions(program.command('compose').description("write base + each applied image's own layers as one image, with provenance"))
    .option('--base <ref>', 'the base image (omit for scratch, then give --platform)')
    .option('--apply <ref>', 'an image whose own layers to include, in order (repeatable)', collect, [])
    .requiredOption('--to <ref>', 'where to write the result, e.g. docker://host/A:latest')
    .option('--platform <os/arch>', 'the platform to compose (default: the base image\'s)')
    .action(async (options: StoreOptions & { base?: string; apply: string[]; to: string; platform?: string }) => {
      const { output, logger } = context();
      const open = referenceOpener(options);
      const platform = parsePlatform(options.platform);
      if (options.base === undefined && platform === undefined) throw new UserError('compose from scratch needs --platform', 'give --base REF or --platform linux/amd64');
      const outcome = await composeToStore({
        base: options.base === undefined ? null : open(options.base),
        applied: options.apply.map(open),
        target: open(options.to),
        ...(platform === undefined ? {} : { platform }),
        onProgress: (message) => logger.debug(message),
      });
      output.out(`${options.to}@${outcome.digest}`);
      output.out(`  layers: ${outcome.provenance.own.layers.start} (base ${outcome.provenance.base?.layers.count ?? 0}, applied ${outcome.provenance.applied.map((a) => a.layers.count).join('+') || 0})`);
      output.out(`  blobs: ${outcome.transfers.mounted} mounted, ${outcome.transfers.present} present, ${outcome.transfers.uploaded} uploaded`);
    });
};
