import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { eventually } from '../cluster/harness.ts';
import { jitterFor, Scheduler, ScheduleError, validateSchedule } from '../../src/watch/scheduler.ts';

const everySecond = '* * * * * *';
const everyOtherSecond = '*/2 * * * * *';

describe('validateSchedule', () => {
  test('accepts five fields and six (seconds first)', () => {
    validateSchedule('*/5 * * * *');
    validateSchedule('*/10 * * * * *');
  });

  for (const bad of ['61 * * * *', 'every 5 minutes', '* * * * * * *']) {
    test(`"${bad}" is refused naming spec.updates.schedule, the value and an example`, () => {
      assert.throws(
        () => validateSchedule(bad),
        (error: unknown) =>
          error instanceof ScheduleError &&
          error.path === 'spec.updates.schedule' &&
          error.message.includes(`"${bad}"`) &&
          error.message.includes('*/5 * * * *'),
      );
    });
  }
});

describe('the minimum interval of a schedule', () => {
  test('a schedule that runs more often than the operator allows is refused, naming the field, the flag and a schedule that fits', () => {
    for (const tooOften of ['* * * * * *', '*/5 * * * * *', '0,1 * * * * *']) {
      assert.throws(
        () => validateSchedule(tooOften, 10_000),
        (error: unknown) =>
          error instanceof ScheduleError &&
          error.message.startsWith(`spec.updates.schedule "${tooOften}": it runs ${tooOften.startsWith('*/5') ? 5 : 1} s apart`) &&
          error.message.includes('--min-schedule-interval 10') &&
          error.message.includes('"*/10 * * * * *"'),
        tooOften,
      );
    }
    validateSchedule('*/10 * * * * *', 10_000);
    validateSchedule('*/5 * * * *', 10_000);
    validateSchedule('* * * * * *');
  });

  test('an interval worked out once is judged against each caller\'s minimum (it is kept per expression)', () => {
    validateSchedule('*/20 * * * * *', 10_000);
    assert.throws(() => validateSchedule('*/20 * * * * *', 30_000), /it runs 20 s apart/);
    validateSchedule('0 0 1 1 *', 10_000);
    validateSchedule('0 0 1 1 *', 10_000);
  });
});

describe('jitterFor', () => {
  test('is the same for the same expression, differs between expressions and stays in its bounds', () => {
    const expressions = Array.from({ length: 50 }, (_, minute) => `${minute} * * * *`);
    const offsets = expressions.map((expression) => jitterFor(expression, 30_000, 3_600_000));
    assert.deepEqual(offsets, expressions.map((expression) => jitterFor(expression, 30_000, 3_600_000)));
    assert.ok(offsets.every((offset) => offset >= 0 && offset < 30_000));
    assert.ok(new Set(offsets).size > 40, 'spread over the window');
    assert.ok(jitterFor('* * * * * *', 30_000, 1_000) < 500, 'never more than half the interval');
    assert.equal(jitterFor('*/5 * * * *', 0, 300_000), 0);
  });
});

describe('Scheduler', () => {
  test('one task per distinct expression, ticking with it; sync and stop leave nothing running', async () => {
    const ticks: string[] = [];
    const scheduler = new Scheduler({ jitterWindowMs: 0, onTick: (expression) => void ticks.push(expression) });
    scheduler.sync([everySecond, everySecond, everyOtherSecond]);
    assert.deepEqual(scheduler.expressions().sort(), [everyOtherSecond, everySecond].sort());
    await eventually('a tick of each expression', async () => (ticks.includes(everySecond) && ticks.includes(everyOtherSecond) ? true : undefined), 10_000);

    scheduler.sync([everyOtherSecond]);
    assert.deepEqual(scheduler.expressions(), [everyOtherSecond]);
    await scheduler.stop();
    assert.deepEqual(scheduler.expressions(), []);
    // The test file ends only if no cron timer is left behind.
  });

  test('an invalid expression changes nothing and names the field', () => {
    const scheduler = new Scheduler({ jitterWindowMs: 0, onTick: () => undefined });
    assert.throws(() => scheduler.sync(['bad']), ScheduleError);
    assert.deepEqual(scheduler.expressions(), []);
  });

  test('jitter follows the expression, within half its interval', async () => {
    const scheduler = new Scheduler({ jitterWindowMs: 30_000, onTick: () => undefined });
    scheduler.sync([everySecond]);
    assert.equal(scheduler.jitterOf(everySecond), jitterFor(everySecond, 30_000, 1_000));
    await scheduler.stop();
  });

  test('an error in onTick is reported and the schedule goes on', async () => {
    const errors: unknown[] = [];
    const scheduler = new Scheduler({
      jitterWindowMs: 0,
      onTick: () => {
        throw new Error('poll failed');
      },
      onError: (_expression, error) => errors.push(error),
    });
    scheduler.sync([everySecond]);
    await eventually('two failed ticks', async () => (errors.length >= 2 ? true : undefined), 10_000);
    await scheduler.stop();
  });
});

describe('Scheduler and a slow tick', () => {
  test('a tick still running skips the next one, and says so through the given logger, not the console', async () => {
    const warnings: string[] = [];
    const noted = (message: string | Error) => void warnings.push(String(message));
    let release: () => void = () => undefined;
    let ticks = 0;
    const scheduler = new Scheduler({
      jitterWindowMs: 0,
      onTick: () => {
        ticks += 1;
        return new Promise<void>((resolve) => (release = resolve));
      },
      logger: { debug: noted, info: noted, warn: noted, error: noted },
    });
    scheduler.sync([everySecond]);
    await eventually('a skipped tick', async () => (warnings.some((w) => /overlap/.test(w)) ? true : undefined), 10_000);
    assert.equal(ticks, 1, 'one tick at a time');
    release();
    await scheduler.stop();
  });
});
