import type { OpenedReference } from '../engine/images.ts';
import { openReferences } from '../engine/open-reference.ts';
import { anonymous, credentialsFromDockerConfigJson } from '../oci/registry/credential-provider.ts';
import type { Kube } from './kube.ts';

/** Opens references of one Stackerfile's registry (its insecure flag, its push credentials). */
export type Opener = (ref: string) => OpenedReference;

/**
 * Opens a Stackerfile's registry as its output says: plain http when insecure, the credentials of
 * its push Secret (in `namespace`), or none. Never the operator's own credentials: those check
 * inputs, and a tenant must not write (nor read for a write) with them.
 */
export async function outputOpener(kube: Kube, namespace: string, output: { pushSecretName?: string | undefined; insecure: boolean }): Promise<Opener> {
  const secret = output.pushSecretName;
  // Read once per use: the stores it opens would each ask a lazy provider, one Secret read per image and repository.
  const credentials = secret === undefined ? anonymous : credentialsFromDockerConfigJson(await kube.dockerConfigJson(namespace, secret), `Secret ${namespace}/${secret}`);
  return openReferences({ ...(output.insecure ? { insecure: true } : {}), credentials });
}
