import { createHash } from 'node:crypto';
import { digestHex } from '../../oci/digest.ts';

/**
 * OCI ChainIDs: ChainID(L0) = DiffID(L0), ChainID(L0..Ln) = sha256(ChainID(L0..Ln-1) + " " + DiffID(Ln)).
 * A rootfs made of the same layers in the same order has the same chain id, whichever image it came from.
 */
export function chainIds(diffIds: readonly string[]): string[] {
  const ids: string[] = [];
  for (const diffId of diffIds) {
    digestHex(diffId);
    const previous = ids[ids.length - 1];
    ids.push(previous === undefined ? diffId : `sha256:${createHash('sha256').update(`${previous} ${diffId}`).digest('hex')}`);
  }
  return ids;
}

export function chainId(diffIds: readonly string[]): string | undefined {
  return chainIds(diffIds).at(-1);
}
