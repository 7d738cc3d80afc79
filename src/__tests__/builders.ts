/** Test data builders: native messages (the Rust host's JSON shape) and diffs. */

import type { JsDiff, JsMessage } from '../generated/native';

/** A sent message with server id `id` in `roomId`. */
export function nativeSent(id: number, roomId = 'r1', text = `message ${id}`): JsMessage {
  return {
    id: String(id),
    serverId: id,
    localId: null,
    roomId,
    sender: { id: 'alice', name: 'Alice', avatarUrl: null },
    text,
    parts: [{ type: 'text/plain', content: text, extraJson: null }],
    createdAt: new Date(Date.UTC(2026, 10, 25, 6, 0, id % 60)).toISOString(),
    state: 'sent',
    failureReason: null,
    editedAt: null,
    deleted: false,
    reactions: [],
    readBy: [],
    pendingChange: false,
  };
}

/** A pending echo with local id `localId`. */
export function nativeEcho(localId: string, roomId = 'r1'): JsMessage {
  return { ...nativeSent(0, roomId, `echo ${localId}`), id: localId, serverId: null, localId, state: 'pending' };
}

/** Diffs as the native module sends them. */
export function json(diffs: JsDiff<JsMessage>[]): string {
  return JSON.stringify(diffs);
}
