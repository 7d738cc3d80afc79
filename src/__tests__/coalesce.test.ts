import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { coalesce } from '../coalesce';

/** A run the test finishes by hand: a real promise, resolved when the test says so. */
function gatedRuns() {
  const gates: Array<() => void> = [];
  let runs = 0;
  const run = () =>
    new Promise<void>((resolve) => {
      runs += 1;
      gates.push(resolve);
    });
  return { run, runs: () => runs, finishNext: () => gates.shift()?.() };
}

/** Lets pending promise callbacks run (no timers involved). */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

describe('coalesce', () => {
  it('turns a burst of triggers during a run into exactly one more run', async () => {
    const g = gatedRuns();
    const c = coalesce(g.run, () => assert.fail('no error expected'));
    c.trigger();
    for (let i = 0; i < 10; i += 1) c.trigger();
    assert.equal(g.runs(), 1, 'one run in flight');
    g.finishNext();
    await settle();
    assert.equal(g.runs(), 2, 'the burst became one queued run');
    g.finishNext();
    await c.idle();
    assert.equal(g.runs(), 2);
  });

  it('runs again for a trigger after the previous run finished', async () => {
    const g = gatedRuns();
    const c = coalesce(g.run, () => undefined);
    c.trigger();
    g.finishNext();
    await c.idle();
    c.trigger();
    assert.equal(g.runs(), 2);
    g.finishNext();
    await c.idle();
  });

  it('reports a failed run and keeps working', async () => {
    const errors: unknown[] = [];
    let calls = 0;
    const c = coalesce(async () => {
      calls += 1;
      if (calls === 1) throw new Error('store busy');
    }, (e) => errors.push(e));
    c.trigger();
    await c.idle();
    c.trigger();
    await c.idle();
    assert.equal(calls, 2);
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as Error).message, 'store busy');
  });

  it('starts nothing after cancel and drops the queued run and late errors', async () => {
    const g = gatedRuns();
    const errors: unknown[] = [];
    const c = coalesce(async () => {
      await g.run();
      throw new Error('late');
    }, (e) => errors.push(e));
    c.trigger();
    c.trigger(); // queued
    c.cancel();
    g.finishNext();
    await c.idle();
    c.trigger();
    await settle();
    assert.equal(g.runs(), 1, 'neither the queued run nor a new trigger ran');
    assert.deepEqual(errors, [], 'an unmounted screen gets no error');
  });
});
