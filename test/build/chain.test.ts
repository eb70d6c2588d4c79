import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { test } from 'node:test';
import { chainId, chainIds } from '../../src/build/storage/chain.ts';

test('chain ids follow the OCI definition', () => {
  const a = `sha256:${'a'.repeat(64)}`;
  const b = `sha256:${'b'.repeat(64)}`;
  const ab = `sha256:${createHash('sha256').update(`${a} ${b}`).digest('hex')}`;
  assert.deepEqual(chainIds([a, b]), [a, ab]);
  assert.equal(chainId([]), undefined);
  assert.throws(() => chainIds(['sha256:nothex']), /not a sha256 digest/);
});
