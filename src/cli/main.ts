#!/usr/bin/env node
import { Command, CommanderError, Option } from 'commander';
import { createLogger, logLevels, type LogLevel } from './log.ts';
import { describeError } from './errors.ts';
import { processOutput } from './output.ts';
import { commands, type CommandContext } from './commands/index.ts';
import { packageVersion } from '../engine/version.ts';

export function buildProgram(context: Omit<CommandContext, 'logger'>): Command {
  const program = new Command('restack')
    .description('Build stacker.yaml recipes without host privilege and keep images current by swapping dependency layers.')
    .version(packageVersion(), '-V, --version', 'print restack\'s version')
    .addOption(new Option('--log-level <level>', 'log verbosity').choices(logLevels).default('info'))
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();
  const withLogger = (): CommandContext => ({ ...context, logger: createLogger(program.opts<{ logLevel: LogLevel }>().logLevel) });
  for (const register of commands) register(program, withLogger);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram({ output: processOutput });
  try {
    await program.parseAsync(argv, { from: 'user' });
    return process.exitCode === undefined ? 0 : Number(process.exitCode);
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    const { text, exitCode } = describeError(error);
    processOutput.err(text);
    return exitCode;
  }
}

process.exitCode = await main(process.argv.slice(2));
