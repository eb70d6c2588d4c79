import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WorkQueue } from '../../src/operator/queue.ts';

const tick = (ms = 5) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(probe: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !probe(); i++) await tick();
  assert.ok(probe(), 'condition not reached');
}

test('a key is never handled by two workers at once; one added while active is handled again once', async () => {
  let active = 0;
  let maxActive = 0;
  let calls = 0;
  let release: () => void = () => {};
  const queue = new WorkQueue(async () => {
    calls++;
    active++;
    maxActive = Math.max(maxActive, active);
    await new Promise<void>((resolve) => (release = resolve));
    active--;
  }, { concurrency: 4 });
  queue.start();
  queue.add('ns/a');
  await until(() => calls === 1);
  queue.add('ns/a');
  queue.add('ns/a');
  await tick();
  assert.equal(calls, 1, 'not handled again while active');
  release();
  await until(() => calls === 2);
  release();
  await queue.idle();
  await tick(20);
  assert.equal(calls, 2, 'the repeated adds collapsed into one');
  assert.equal(maxActive, 1);
  await queue.stop();
});

test('pending keys are de-duplicated and different keys run side by side', async () => {
  const seen: string[] = [];
  const queue = new WorkQueue(async (key) => {
    seen.push(key);
  }, { concurrency: 2 });
  for (const key of ['ns/a', 'ns/b', 'ns/a', 'ns/c', 'ns/b']) queue.add(key);
  assert.equal(queue.depth, 3);
  queue.start();
  await until(() => seen.length === 3);
  await queue.idle();
  assert.deepEqual(seen.sort(), ['ns/a', 'ns/b', 'ns/c']);
  await queue.stop();
});

test('failures are retried with capped exponential backoff; success resets it', async () => {
  let calls = 0;
  const queue = new WorkQueue(async () => {
    calls++;
    if (calls < 4) throw new Error('transient');
  }, { baseDelayMs: 5, maxDelayMs: 20 });
  assert.deepEqual([1, 2, 3, 4, 5, 6].map((n) => queue.backoff(n)), [5, 10, 20, 20, 20, 20]);
  queue.start();
  queue.add('ns/a');
  await until(() => calls === 4);
  await tick(60);
  assert.equal(calls, 4, 'no retry after the success');
  await queue.stop();
});

test('addAfter and requeueAfterMs bring a key back later; stop drops what is pending', async () => {
  let calls = 0;
  const queue = new WorkQueue(async () => {
    calls++;
    return calls === 1 ? { requeueAfterMs: 10 } : undefined;
  });
  queue.start();
  queue.add('ns/a');
  await until(() => calls === 2);
  queue.addAfter('ns/b', 10_000);
  await queue.stop();
  assert.equal(calls, 2);
});
