import { setupBtrfs } from '../../build/storage/btrfs-tools.ts';
import type { RegisterCommand } from './index.ts';

export const registerSetupBtrfs: RegisterCommand = (program, context) => {
  program
    .command('setup-btrfs')
    .description('mount a loop-backed btrfs filesystem at DIR for the btrfs storage driver (needs root and loop devices)')
    .argument('<dir>', 'where to mount it; use it as restack build --roots-dir DIR')
    .requiredOption('--size <size>', 'size of the sparse image file, e.g. 20G')
    .option('--image <file>', 'the image file (default: DIR.btrfs.img)')
    .action(async (dir: string, options: { size: string; image?: string }) => {
      const { output } = context();
      const result = await setupBtrfs({ dir, size: options.size, ...(options.image === undefined ? {} : { image: options.image }) });
      output.out(`${result.dir}: btrfs from ${result.image}; build with --roots-dir ${result.dir} --storage btrfs`);
    });
};
