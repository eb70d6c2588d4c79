import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RateLimits, RegistryLimiter, TokenBucket, type Clock } from '../../src/watch/rate-limit.ts';

/** A clock that moves only when a waiter sleeps, recording every wait. */
function manualClock(): Clock & { waits: number[] } {
  let now = 0;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    sleep: async (ms) => {
      waits.push(ms);
      now += ms;
    },
  };
}

describe('TokenBucket', () => {
  test('lets a burst through, then spaces requests at the rate, refilling with time', () => {
    const bucket = new TokenBucket(2, 3, 0);
    assert.deepEqual([bucket.reserve(0), bucket.reserve(0), bucket.reserve(0)], [0, 0, 0]);
    assert.deepEqual([bucket.reserve(0), bucket.reserve(0)], [500, 1000], 'lent ahead, served in order');
    assert.equal(bucket.reserve(10_000), 0, 'refilled after a quiet spell');
  });

  test('refuses nonsense limits', () => {
    assert.throws(() => new TokenBucket(0, 1, 0), RangeError);
    assert.throws(() => new TokenBucket(1, 0, 0), RangeError);
  });
});

describe('RegistryLimiter', () => {
  test('waits out the rate on the injected clock', async () => {
    const clock = manualClock();
    const limiter = new RegistryLimiter({ requestsPerSecond: 10, burst: 2, maxConcurrency: 8 }, clock);
    for (let i = 0; i < 4; i++) await limiter.run(async () => i);
    assert.deepEqual(clock.waits, [100, 100]);
  });

  test('never runs more than maxConcurrency requests at once', async () => {
    const limiter = new RegistryLimiter({ requestsPerSecond: 1000, burst: 1000, maxConcurrency: 2 }, manualClock());
    let active = 0;
    let peak = 0;
    let finished = 0;
    const gates: Array<() => void> = [];
    const runs = Array.from({ length: 6 }, () =>
      limiter.run(async () => {
        active++;
        peak = Math.max(peak, active);
        await new Promise<void>((resolve) => gates.push(resolve));
        active--;
        finished++;
      }),
    );
    while (finished < runs.length) {
      await new Promise((resolve) => setImmediate(resolve));
      gates.shift()?.();
    }
    await Promise.all(runs);
    assert.equal(peak, 2);
  });
});

describe('fairness between tenants', () => {
  test('a tenant with many checks queued does not hold up another: waiting tenants take turns, one request each', async () => {
    const limiter = new RegistryLimiter({ requestsPerSecond: 1000, burst: 1000, maxConcurrency: 1 }, manualClock());
    const order: string[] = [];
    const gates: Array<() => void> = [];
    const request = (tenant: string, i: number) =>
      limiter.run(async () => {
        order.push(`${tenant}${i}`);
        await new Promise<void>((resolve) => gates.push(resolve));
      }, tenant);
    const runs = [...Array.from({ length: 5 }, (_, i) => request('busy', i)), request('quiet', 0), request('other', 0), request('quiet', 1)];
    while (order.length < runs.length || gates.length > 0) {
      await new Promise((resolve) => setImmediate(resolve));
      gates.shift()?.();
    }
    await Promise.all(runs);
    assert.deepEqual(order, ['busy0', 'busy1', 'quiet0', 'other0', 'busy2', 'quiet1', 'busy3', 'busy4']);
  });
});

describe('RateLimits', () => {
  test('one limiter per registry, with per-host overrides', async () => {
    const clock = manualClock();
    const limits = new RateLimits({ defaults: { requestsPerSecond: 1, burst: 1, maxConcurrency: 1 }, perRegistry: { 'slow.example': { requestsPerSecond: 0.5 } }, clock });
    assert.equal(limits.for('a.example'), limits.for('a.example'));
    await limits.for('a.example').run(async () => undefined);
    await limits.for('b.example').run(async () => undefined);
    assert.deepEqual(clock.waits, [], 'each registry has its own burst');
    await limits.for('slow.example').run(async () => undefined);
    await limits.for('slow.example').run(async () => undefined);
    assert.deepEqual(clock.waits, [2000]);
  });
});
