import type { Command } from 'commander';
import type { OpenedReference } from '../../engine/images.ts';
import { openReferences } from '../../engine/open-reference.ts';

export interface StoreOptions {
  insecure?: boolean;
  authfile?: string;
}

/** Options for commands that read or write images in a registry or layout. */
export function addStoreOptions(command: Command): Command {
  return command
    .option('--insecure', 'use plain http and skip TLS verification (loopback registries use http anyway)')
    .option('--authfile <file>', 'registry credentials as a docker config.json (default: $REGISTRY_AUTH_FILE, then ~/.docker/config.json)');
}

/** Parses a reference as the user wrote it and opens its store, with the command's options. */
export function referenceOpener(options: StoreOptions): (input: string) => OpenedReference {
  return openReferences({
    ...(options.insecure === true ? { insecure: true } : {}),
    ...(options.authfile === undefined ? {} : { authFile: options.authfile }),
  });
}
