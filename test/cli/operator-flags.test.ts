/**
 * The operator's tuning flags (docs/operator.md, "At scale"): a value it cannot use is refused
 * before the kubeconfig is read, naming the flag, the value and an example.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { restack } from './restack.ts';

const operator = (flags: string[]) => restack(['operator', '--executor', 'local', ...flags], { env: { KUBECONFIG: join(import.meta.dirname, 'no-kubeconfig') } });

for (const [flags, message, hint] of [
  [['--reconcile-workers', '0'], /--reconcile-workers 0: not a positive whole number/, /e\.g\. --reconcile-workers 8/],
  [['--input-checks-per-second', 'fast'], /--input-checks-per-second fast: not a positive number/, /e\.g\. --input-checks-per-second 10/],
  [['--input-check-burst', '2.5'], /--input-check-burst 2\.5: not a positive whole number/, /e\.g\. --input-check-burst 20/],
  [['--input-checks-in-flight', '-1'], /--input-checks-in-flight -1: not a positive whole number/, /e\.g\. --input-checks-in-flight 4/],
] as const) {
  test(`${flags.join(' ')} is refused with an example`, async () => {
    const result = await operator([...flags]);
    assert.equal(result.exitCode, 1, String(result.stderr));
    assert.match(String(result.stderr), message);
    assert.match(String(result.stderr), hint);
    assert.doesNotMatch(String(result.stderr), /kubeconfig/, 'refused before the kubeconfig is read');
  });
}
