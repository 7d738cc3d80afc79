import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ChatSyncError, ErrorCodes } from '../errors';
import { appendOlder, initialMessagesState, mergeNewestWindow, messagesReducer, type MessagesState } from '../messagesState';
import { echo, ids, range, sent } from './builders';

function loaded(roomId: string, messages = range(10, 1, roomId), limit = 50): MessagesState {
  return messagesReducer(initialMessagesState(roomId), { type: 'windowLoaded', roomId, messages, limit });
}

describe('messagesReducer', () => {
  it('starts loading with no messages and older pages assumed', () => {
    const state = initialMessagesState('r1');
    assert.deepEqual(state.messages, []);
    assert.equal(state.isLoading, true);
    assert.equal(state.isLoadingEarlier, false);
    assert.equal(state.hasMore, true);
  });

  it('shows the first window newest first and stops loading', () => {
    const state = loaded('r1', range(3, 1));
    assert.deepEqual(ids(state.messages), ['3', '2', '1']);
    assert.equal(state.isLoading, false);
    assert.ok(state.messages[0].createdAt instanceof Date, 'GiftedChat needs a Date');
  });

  it('replaces a pending echo by the sent message when the window is read again', () => {
    let state = loaded('r1', [echo('txn-1'), ...range(2, 1)]);
    assert.deepEqual(ids(state.messages), ['txn-1', '2', '1']);
    assert.equal(state.messages[0].pending, true);
    const sentEcho = { ...sent(3), localId: 'txn-1' };
    state = messagesReducer(state, { type: 'windowLoaded', roomId: 'r1', messages: [sentEcho, ...range(2, 1)], limit: 50 });
    assert.deepEqual(ids(state.messages), ['3', '2', '1']);
    assert.equal(state.messages[0].sent, true);
  });

  it('drops a discarded failed echo', () => {
    let state = loaded('r1', [echo('txn-9', 'r1', 'failed'), ...range(2, 1)]);
    assert.equal(state.messages[0].failed, true);
    state = messagesReducer(state, { type: 'windowLoaded', roomId: 'r1', messages: range(2, 1), limit: 50 });
    assert.deepEqual(ids(state.messages), ['2', '1']);
  });

  it('ignores answers for a room the screen has left', () => {
    let state = loaded('r1', range(2, 1));
    state = messagesReducer(state, { type: 'reset', roomId: 'r2' });
    assert.deepEqual(state.messages, []);
    const stale = messagesReducer(state, { type: 'windowLoaded', roomId: 'r1', messages: range(9, 8), limit: 50 });
    assert.equal(stale, state);
    const staleOlder = messagesReducer(state, { type: 'loadEarlierFinished', roomId: 'r1', messages: range(1, 1), hasMore: false });
    assert.equal(staleOlder, state);
  });

  it('keeps its state when reset to the same room', () => {
    const state = loaded('r1');
    assert.equal(messagesReducer(state, { type: 'reset', roomId: 'r1' }), state);
  });

  it('pages back: older messages go below, isLoadingEarlier toggles, hasMore follows the answer', () => {
    let state = loaded('r1', range(20, 11), 10);
    state = messagesReducer(state, { type: 'loadEarlierStarted', roomId: 'r1' });
    assert.equal(state.isLoadingEarlier, true);
    state = messagesReducer(state, { type: 'loadEarlierFinished', roomId: 'r1', messages: range(10, 1), hasMore: false });
    assert.equal(state.isLoadingEarlier, false);
    assert.equal(state.hasMore, false);
    assert.deepEqual(ids(state.messages), ids(range(20, 1)));
  });

  it('keeps pages loaded earlier when the newest window is read again', () => {
    let state = loaded('r1', range(20, 11), 10);
    state = messagesReducer(state, { type: 'loadEarlierFinished', roomId: 'r1', messages: range(10, 1), hasMore: false });
    // Two new messages arrive: the window of 10 now covers 22..13.
    state = messagesReducer(state, { type: 'windowLoaded', roomId: 'r1', messages: range(22, 13), limit: 10 });
    assert.deepEqual(ids(state.messages), ids(range(22, 1)));
    assert.equal(state.hasMore, false);
  });

  it('drops older pages when a full window shares nothing with them (a gap is possible)', () => {
    let state = loaded('r1', range(20, 11), 10);
    state = messagesReducer(state, { type: 'loadEarlierFinished', roomId: 'r1', messages: range(10, 1), hasMore: false });
    state = messagesReducer(state, { type: 'windowLoaded', roomId: 'r1', messages: range(100, 91), limit: 10 });
    assert.deepEqual(ids(state.messages), ids(range(100, 91)));
    assert.equal(state.hasMore, true, 'paging back must be possible again');
  });

  it('records a failure, stops both spinners, and clears it on the next success', () => {
    let state = messagesReducer(initialMessagesState('r1'), { type: 'loadEarlierStarted', roomId: 'r1' });
    const error = new ChatSyncError(ErrorCodes.OFFLINE, 'offline: connection refused');
    state = messagesReducer(state, { type: 'failed', roomId: 'r1', error });
    assert.equal(state.error, error);
    assert.equal(state.isLoading, false);
    assert.equal(state.isLoadingEarlier, false);
    state = messagesReducer(state, { type: 'windowLoaded', roomId: 'r1', messages: range(1, 1), limit: 50 });
    assert.equal(state.error, null);
  });
});

describe('mergeNewestWindow', () => {
  it('keeps held echoes out when the window no longer has them', () => {
    const merged = mergeNewestWindow([echo('a'), ...range(5, 1)], range(6, 1), 50);
    assert.deepEqual(ids(merged.messages), ['6', '5', '4', '3', '2', '1']);
    assert.equal(merged.replacedAll, false);
  });

  it('keeps older sent messages below a window of echoes only', () => {
    const merged = mergeNewestWindow(range(3, 1), [echo('a'), echo('b')], 50);
    assert.deepEqual(ids(merged.messages), ['a', 'b', '3', '2', '1']);
  });

  it('never shows an _id twice', () => {
    const merged = mergeNewestWindow(range(5, 1), [...range(5, 3), sent(3)], 50);
    assert.deepEqual(ids(merged.messages), ['5', '4', '3', '2', '1']);
  });
});

describe('appendOlder', () => {
  it('skips messages already held and ones not older than the oldest held', () => {
    const out = appendOlder(range(10, 6), [...range(7, 4)]);
    assert.deepEqual(ids(out), ids(range(10, 4)));
  });

  it('appends everything to an empty list', () => {
    assert.deepEqual(ids(appendOlder([], range(3, 1))), ['3', '2', '1']);
  });
});
