import type { Command } from 'commander';
import type { Logger } from 'pino';
import type { Output } from '../output.ts';
import { registerBuild } from './build.ts';
import { registerCompose } from './compose.ts';
import { registerDoctor } from './doctor.ts';
import { registerInspect } from './inspect.ts';
import { registerOperator } from './operator.ts';
import { registerPlan } from './plan.ts';
import { registerSetupBtrfs } from './setup-btrfs.ts';
import { registerSwap } from './swap.ts';
import { registerUpdate } from './update.ts';
import { registerValidate } from './validate.ts';
import { registerVerify } from './verify.ts';
import { registerWhich } from './which.ts';

export interface CommandContext {
  output: Output;
  logger: Logger;
}

/** Adds one command to the program; `context` is called when the command runs, after global options are parsed. */
export type RegisterCommand = (program: Command, context: () => CommandContext) => void;

export const commands: RegisterCommand[] = [registerValidate, registerPlan, registerBuild, registerInspect, registerSwap, registerUpdate, registerWhich, registerVerify, registerCompose, registerDoctor, registerSetupBtrfs, registerOperator];
