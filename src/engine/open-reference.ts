import { openStore, type OpenStoreOptions } from '../oci/open.ts';
import { parseReference } from '../oci/reference.ts';
import type { OpenedReference } from './images.ts';

/** Parses references as users write them and opens their stores; registry stores are shared per host. */
export function openReferences(options: OpenStoreOptions = {}): (input: string) => OpenedReference {
  return (input) => {
    const ref = parseReference(input);
    const { store, repository, reference } = openStore(ref, options);
    return { ref, store, repository, reference, display: input };
  };
}
