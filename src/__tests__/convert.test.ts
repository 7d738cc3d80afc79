/** GiftedChat's shape made from the core's, and the native replies unwrapped into values or errors. */

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { toChatMessage, toRoomSummary } from '../convert';
import { ChatSyncError, toChatSyncError, unwrapReply } from '../errors';
import type { GiftedChatMessageShape } from '../types';
import { nativeEcho, nativeSent } from './builders';

describe('toChatMessage', () => {
  it('makes GiftedChat fields from the core message', () => {
    const m = toChatMessage({ ...nativeSent(7), sender: { id: 'bob', name: 'Bob', avatarUrl: 'https://a/b.png' } });
    assert.equal(m._id, '7');
    assert.ok(m.createdAt instanceof Date);
    assert.equal(m.createdAt.toISOString(), nativeSent(7).createdAt);
    assert.deepEqual(m.user, { _id: 'bob', name: 'Bob', avatar: 'https://a/b.png' });
    assert.deepEqual([m.sent, m.pending, m.failed], [true, false, false]);
    const fits: GiftedChatMessageShape = m; // tsc proves the shape fits GiftedChat's IMessage
    assert.equal(fits.text, 'message 7');
  });

  it('keys an echo by its local id and flags it pending', () => {
    const m = toChatMessage(nativeEcho('txn-1'));
    assert.equal(m._id, 'txn-1');
    assert.deepEqual([m.sent, m.pending, m.failed, m.serverId], [false, true, false, null]);
    assert.deepEqual(m.user, { _id: 'alice', name: 'Alice' }, 'no avatar key when the profile has none');
  });

  it('carries the chat model: edit time, tombstone, reactions, readers, a queued change', () => {
    const plain = toChatMessage(nativeSent(8));
    assert.deepEqual([plain.editedAt, plain.deleted, plain.reactions, plain.readBy, plain.pendingChange], [null, false, [], [], false]);
    const m = toChatMessage({
      ...nativeSent(8),
      editedAt: '2026-12-02T10:00:00.000Z',
      reactions: [{ key: '👍', count: 2, me: true }],
      readBy: ['bob'],
      pendingChange: true,
    });
    assert.ok(m.editedAt instanceof Date);
    assert.equal(m.editedAt?.toISOString(), '2026-12-02T10:00:00.000Z');
    assert.deepEqual(m.reactions, [{ key: '👍', count: 2, me: true }]);
    assert.deepEqual([m.readBy, m.pendingChange], [['bob'], true]);
    const tombstone = toChatMessage({ ...nativeSent(9), text: '', parts: [], deleted: true });
    assert.deepEqual([tombstone.deleted, tombstone.text], [true, '']);
  });

  it('converts a room summary with its last message and unread count', () => {
    const r = toRoomSummary({ id: 'r1', name: null, memberIds: ['alice', 'bob'], lastMessage: nativeSent(3), unread: 2 });
    assert.equal(r.lastMessage?._id, '3');
    assert.equal(r.unread, 2);
    assert.equal(toRoomSummary({ id: 'r1', name: null, memberIds: [], lastMessage: null, unread: 0 }).lastMessage, null);
  });
});

describe('native replies', () => {
  it('unwrap ok values, including null', () => {
    assert.deepEqual(unwrapReply<{ a: number }>('{"ok":{"a":1}}'), { a: 1 });
    assert.equal(unwrapReply<null>('{"ok":null}'), null);
  });

  it('turn err into a ChatSyncError with the host code and fields', () => {
    const reply = '{"err":{"code":"E_REJECTED","message":"rejected by server (forbidden): no","retryAfterSecs":null,"serverCode":"forbidden"}}';
    assert.throws(
      () => unwrapReply(reply),
      (e: unknown) =>
        e instanceof ChatSyncError && e.code === 'E_REJECTED' && e.serverCode === 'forbidden' && e.message === 'rejected by server (forbidden): no' && !e.isTransient,
    );
    const offline = '{"err":{"code":"E_OFFLINE","message":"server busy (503)","retryAfterSecs":7,"serverCode":null}}';
    assert.throws(() => unwrapReply(offline), (e: unknown) => e instanceof ChatSyncError && e.isTransient && e.retryAfterSecs === 7);
  });

  it('refuse what is not a reply as E_INTERNAL', () => {
    assert.throws(() => unwrapReply('not json'), (e: unknown) => e instanceof ChatSyncError && e.code === 'E_INTERNAL');
    assert.throws(() => unwrapReply('{"value":1}'), (e: unknown) => e instanceof ChatSyncError && e.code === 'E_INTERNAL');
    assert.equal(toChatSyncError(new TypeError('x')).code, 'E_INTERNAL');
  });
});
