import { UserError } from './errors.ts';

/** A flag's value as a whole number of at least 1, or a UserError naming the flag and an example. */
export function positiveInteger(flag: string, value: string, example: number): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed < 1) throw new UserError(`${flag} ${value}: not a positive whole number`, `e.g. ${flag} ${example}`);
  return parsed;
}
