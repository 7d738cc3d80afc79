import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { affectsRoom, networkReducer, networkStateFromStatus, outboxReducer, syncStateReducer } from '../statusState';

describe('network state', () => {
  it('maps unknown to null, not to offline', () => {
    assert.deepEqual(networkStateFromStatus('unknown'), { isConnected: null, status: 'unknown' });
    assert.deepEqual(networkStateFromStatus('online'), { isConnected: true, status: 'online' });
    assert.deepEqual(networkStateFromStatus('offline'), { isConnected: false, status: 'offline' });
  });

  it('follows network events and ignores other kinds', () => {
    let state = networkStateFromStatus('unknown');
    state = networkReducer(state, { type: 'networkStatusChanged', status: 'online' });
    assert.equal(state.isConnected, true);
    const same = networkReducer(state, { type: 'outboxChanged', pending: 1, failed: 0 });
    assert.equal(same, state);
    state = networkReducer(state, { type: 'networkStatusChanged', status: 'offline' });
    assert.equal(state.isConnected, false);
  });

  it('returns the same object when nothing changed (no re-render)', () => {
    const state = networkStateFromStatus('online');
    assert.equal(networkReducer(state, { type: 'networkStatusChanged', status: 'online' }), state);
  });
});

describe('outbox and sync state', () => {
  it('counts pending and failed sends', () => {
    let state = { pending: 0, failed: 0 };
    state = outboxReducer(state, { type: 'outboxChanged', pending: 2, failed: 1 });
    assert.deepEqual(state, { pending: 2, failed: 1 });
    assert.equal(outboxReducer(state, { type: 'outboxChanged', pending: 2, failed: 1 }), state);
    assert.equal(outboxReducer(state, { type: 'syncStateChanged', state: 'live' }), state);
  });

  it('tracks the sync engine', () => {
    assert.equal(syncStateReducer('idle', { type: 'syncStateChanged', state: 'backing_off' }), 'backing_off');
    assert.equal(syncStateReducer('live', { type: 'networkStatusChanged', status: 'offline' }), 'live');
  });

  it('routes message changes to the right room only', () => {
    assert.equal(affectsRoom({ type: 'messagesChanged', roomId: 'r1', ids: ['1'] }, 'r1'), true);
    assert.equal(affectsRoom({ type: 'messagesChanged', roomId: 'r2', ids: ['1'] }, 'r1'), false);
    assert.equal(affectsRoom({ type: 'outboxChanged', pending: 0, failed: 0 }, 'r1'), false);
  });
});
