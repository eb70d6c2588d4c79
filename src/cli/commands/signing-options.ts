import type { Command } from 'commander';
import { restackSigning, type ImageSigning } from '../../engine/signing.ts';
import { fileSigner } from '../../sign/key-file.ts';

export interface SigningOptions {
  signKey?: string;
  builderId?: string;
}

/** Options for commands that publish images: sign and attest each one before its tag moves. */
export function addSigningOptions(command: Command): Command {
  return command
    .option('--sign-key <file>', 'sign each image published and attest its SLSA provenance, before its tag moves (cosign tag scheme): a cosign.key, its password in COSIGN_PASSWORD (docs/signing.md)')
    .option('--builder-id <uri>', 'the builder named in the provenance (default: pkg:npm/restack@VERSION; build pods pass their image)');
}

/** The signing a command's options ask for; undefined without --sign-key. Reads and decrypts the key now, so a bad key fails before any work. */
export async function signingFrom(options: SigningOptions): Promise<ImageSigning | undefined> {
  if (options.signKey === undefined) return undefined;
  return restackSigning(await fileSigner(options.signKey, process.env), options.builderId);
}
