import type { Command } from 'commander';
import { openStore, type OpenStoreOptions } from '../../oci/open.ts';
import { parseReference } from '../../oci/reference.ts';
import type { OpenedReference } from '../../engine/images.ts';

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

/** Parses a reference as the user wrote it and opens its store; stores are shared per registry. */
export function referenceOpener(options: StoreOptions): (input: string) => OpenedReference {
  const storeOptions: OpenStoreOptions = {
    ...(options.insecure === true ? { insecure: true } : {}),
    ...(options.authfile === undefined ? {} : { authFile: options.authfile }),
  };
  return (input) => {
    const ref = parseReference(input);
    const { store, repository, reference } = openStore(ref, storeOptions);
    return { ref, store, repository, reference, display: input };
  };
}
