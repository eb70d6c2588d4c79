import { Option } from 'commander';
import { doctorPassed, runDoctor } from '../../build/doctor.ts';
import type { StorageChoice } from '../../build/storage/open.ts';
import { printJson } from '../output.ts';
import type { RegisterCommand } from './index.ts';

export const registerDoctor: RegisterCommand = (program, context) => {
  program
    .command('doctor')
    .description('check that this machine can build: tools, user namespace ids, overlayfs, btrfs, loop devices')
    .option('--roots-dir <dir>', 'where build storage will live, as for restack build: overlay is probed there, and its filesystem decides what --storage auto picks', '.restack/roots')
    .addOption(new Option('--storage <driver>', 'the storage driver builds will use').choices(['auto', 'btrfs', 'overlay']).default('auto'))
    .option('--json', 'print the checks as JSON')
    .action(async (options: { rootsDir: string; storage: StorageChoice; json?: boolean }) => {
      const { output } = context();
      const checks = await runDoctor({ storage: options.storage, storageRoot: options.rootsDir });
      const passed = doctorPassed(checks);
      if (options.json === true) {
        printJson(output, { ok: passed, checks });
      } else {
        for (const check of checks) {
          const status = check.ok ? 'ok  ' : check.required ? 'FAIL' : 'warn';
          output.out(`${status}  ${check.check}: ${check.detail}${check.ok || check.fix === undefined ? '' : `\n      fix: ${check.fix}`}`);
        }
        output.out(passed ? 'ready to build' : 'not ready: fix the FAIL lines above');
      }
      if (!passed) process.exitCode = 1;
    });
};
