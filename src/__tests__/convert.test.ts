import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { NativeEventNames, parseNativeEvent, toChatMessage, toClientStatus, toRoomSummary, toSession } from '../convert';
import { ChatSyncError, ErrorCodes, toChatSyncError } from '../errors';
import type { ChatMessage, GiftedChatMessageShape } from '../types';
import { nativeSent } from './builders';

// Compile-time: a ChatMessage is what GiftedChat renders (tsc fails here otherwise).
const giftedChatReady: (m: ChatMessage) => GiftedChatMessageShape = (m) => m;

describe('bridge conversions', () => {
  it("makes GiftedChat's shape from the core's: _id, user, a Date, the flags of the state", () => {
    const raw = nativeSent(7);
    const message = giftedChatReady(toChatMessage(raw)) as ChatMessage;
    assert.equal(message.createdAt.toISOString(), raw.createdAt);
    assert.equal(message._id, '7');
    assert.deepEqual(message.user, { _id: 'alice', name: 'Alice' });
    assert.deepEqual([message.pending, message.sent, message.failed], [false, true, false]);
    assert.equal(message.state, 'sent');
    assert.equal(message.serverId, 7);
    assert.deepEqual(message.parts, raw.parts);
    const withAvatar = toChatMessage({ ...raw, sender: { id: 'bob', name: 'Bob', avatarUrl: 'https://x/b.png' } });
    assert.deepEqual(withAvatar.user, { _id: 'bob', name: 'Bob', avatar: 'https://x/b.png' });
  });

  it('keeps an echo keyed by its local id, with its state as flags and its reason', () => {
    const failed = toChatMessage({ ...nativeSent(0), id: 'txn-1', serverId: null, localId: 'txn-1', state: 'failed', failureReason: 'no' });
    assert.equal(failed._id, 'txn-1');
    assert.deepEqual([failed.pending, failed.sent, failed.failed], [false, false, true]);
    assert.equal(failed.failureReason, 'no');
    const pending = toChatMessage({ ...nativeSent(0), id: 'txn-2', serverId: null, localId: 'txn-2', state: 'pending' });
    assert.deepEqual([pending.pending, pending.sent, pending.failed, pending.failureReason], [true, false, false, null]);
  });

  it('converts a session', () => {
    assert.deepEqual(toSession({ user: { id: 'alice', name: 'Alice', avatarUrl: 'https://x/a.png' } }), {
      user: { _id: 'alice', name: 'Alice', avatar: 'https://x/a.png' },
    });
  });

  it('converts a room summary with and without a last message', () => {
    const withLast = toRoomSummary({ id: 'r1', name: null, memberIds: ['alice', 'bob'], lastMessage: nativeSent(3) });
    assert.ok(withLast.lastMessage?.createdAt instanceof Date);
    assert.equal(toRoomSummary({ id: 'r1', name: null, memberIds: [], lastMessage: null }).lastMessage, null);
  });

  it('parses each native event', () => {
    assert.deepEqual(parseNativeEvent(NativeEventNames.messagesChanged, { roomId: 'r1', ids: ['1', 'txn-2'] }), {
      type: 'messagesChanged',
      roomId: 'r1',
      ids: ['1', 'txn-2'],
    });
    assert.deepEqual(parseNativeEvent(NativeEventNames.networkStatusChanged, { status: 'offline' }), {
      type: 'networkStatusChanged',
      status: 'offline',
    });
    assert.deepEqual(parseNativeEvent(NativeEventNames.syncStateChanged, { state: 'backing_off' }), {
      type: 'syncStateChanged',
      state: 'backing_off',
    });
    assert.deepEqual(parseNativeEvent(NativeEventNames.outboxChanged, { pending: 1, failed: 2 }), {
      type: 'outboxChanged',
      pending: 1,
      failed: 2,
    });
    assert.deepEqual(parseNativeEvent(NativeEventNames.unauthorized, { reason: 'token expired' }), {
      type: 'unauthorized',
      reason: 'token expired',
    });
  });

  it('rejects payloads of the wrong shape instead of guessing', () => {
    assert.equal(parseNativeEvent(NativeEventNames.messagesChanged, { roomId: 1 }), null);
    assert.equal(parseNativeEvent(NativeEventNames.syncStateChanged, { state: 'dancing' }), null);
    assert.equal(parseNativeEvent(NativeEventNames.outboxChanged, null), null);
    assert.equal(parseNativeEvent('SomethingElse', {}), null);
    assert.deepEqual(parseNativeEvent(NativeEventNames.networkStatusChanged, { status: 42 }), {
      type: 'networkStatusChanged',
      status: 'unknown',
    });
  });

  it('reads a status with neutral fallbacks', () => {
    assert.deepEqual(toClientStatus({ networkStatus: 'online', syncState: 'live', pending: 3, failed: 0 }), {
      networkStatus: 'online',
      syncState: 'live',
      pending: 3,
      failed: 0,
    });
    assert.deepEqual(toClientStatus(undefined), { networkStatus: 'unknown', syncState: 'idle', pending: 0, failed: 0 });
  });
});

describe('errors', () => {
  it('keeps the code and message of a native rejection', () => {
    // What RN delivers for promise.reject("E_OFFLINE", "offline: connection refused").
    const nativeRejection = Object.assign(new Error('offline: connection refused'), { code: 'E_OFFLINE' });
    const error = toChatSyncError(nativeRejection);
    assert.ok(error instanceof ChatSyncError);
    assert.equal(error.code, ErrorCodes.OFFLINE);
    assert.equal(error.message, 'offline: connection refused');
    assert.equal(error.isTransient, true);
  });

  it('maps unknown codes and non-errors to E_INTERNAL, keeping the text', () => {
    assert.equal(toChatSyncError({ code: 'EUNSPECIFIED', message: 'boom' }).code, ErrorCodes.INTERNAL);
    assert.equal(toChatSyncError({ code: 'EUNSPECIFIED', message: 'boom' }).message, 'boom');
    assert.equal(toChatSyncError('plain string').message, 'plain string');
    const rejected = toChatSyncError({ code: 'E_REJECTED', message: 'rejected by server (forbidden): no' });
    assert.equal(rejected.code, ErrorCodes.REJECTED);
    assert.equal(rejected.isTransient, false);
  });

  it('passes a ChatSyncError through unchanged', () => {
    const error = new ChatSyncError(ErrorCodes.NOT_CONFIGURED, 'call configure first');
    assert.equal(toChatSyncError(error), error);
  });
});
