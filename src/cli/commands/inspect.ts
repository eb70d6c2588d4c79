import { inspectImage } from '../../engine/inspect.ts';
import { describeOrigin } from '../../swap/provenance.ts';
import { formatTable, printJson } from '../output.ts';
import type { RegisterCommand } from './index.ts';
import { addStoreOptions, referenceOpener, type StoreOptions } from './store-options.ts';

export const registerInspect: RegisterCommand = (program, context) => {
  addStoreOptions(program.command('inspect').description('show an image layer by layer, with where each layer came from').argument('<ref>', 'docker://host/repo:tag or oci:DIR:TAG'))
    .option('--json', 'print one JSON object')
    .action(async (ref: string, options: StoreOptions & { json?: boolean }) => {
      const { output } = context();
      const image = await inspectImage(referenceOpener(options)(ref));
      if (options.json === true) {
        printJson(output, image);
        return;
      }
      output.out(`${image.ref}\n  digest: ${image.digest}\n  type:   ${image.mediaType}`);
      for (const platform of image.platforms) {
        const { config } = platform;
        output.out(`\nplatform ${platform.platform}  manifest ${platform.digest}`);
        output.out(`  config ${config.digest}${config.created === undefined ? '' : `  created ${config.created}`}`);
        if (config.entrypoint) output.out(`  entrypoint ${JSON.stringify(config.entrypoint)}`);
        if (config.cmd) output.out(`  cmd ${JSON.stringify(config.cmd)}`);
        if (config.user !== undefined) output.out(`  user ${config.user}`);
        if (config.workingDir !== undefined) output.out(`  working dir ${config.workingDir}`);
        if (config.env.length > 0) output.out(`  env ${config.env.join(' ')}`);
        output.out(
          formatTable(
            ['#', 'DIGEST', 'SIZE', 'MEDIA TYPE', 'ORIGIN'],
            platform.layers.map((layer) => [String(layer.index), layer.digest.slice(0, 19), String(layer.size), layer.mediaType, describeOrigin(layer.origin)]),
          ).replace(/^/gm, '  '),
        );
        if (platform.provenance === null) output.out('  (no restack provenance: origins unknown)');
      }
    });
};
