/** Test data builders: messages in the shape the native modules send, converted like the API does. */

import { toChatMessage } from '../convert';
import type { ChatMessage, NativeChatMessage } from '../types';

/** A sent message with server id `id` in `roomId`. */
export function nativeSent(id: number, roomId = 'r1', text = `message ${id}`): NativeChatMessage {
  return {
    _id: String(id),
    serverId: id,
    localId: null,
    roomId,
    text,
    createdAt: new Date(Date.UTC(2026, 10, 25, 6, 0, id % 60)).toISOString(),
    user: { _id: 'alice', name: 'Alice' },
    state: 'sent',
    pending: false,
    sent: true,
    failed: false,
    parts: [{ type: 'text/plain', content: text }],
  };
}

/** A sent message as the API returns it. */
export function sent(id: number, roomId = 'r1'): ChatMessage {
  return toChatMessage(nativeSent(id, roomId));
}

/** A pending (or failed) echo with local id `localId`. */
export function echo(localId: string, roomId = 'r1', state: 'pending' | 'failed' = 'pending'): ChatMessage {
  return toChatMessage({
    ...nativeSent(0, roomId, `echo ${localId}`),
    _id: localId,
    serverId: null,
    localId,
    state,
    pending: state === 'pending',
    sent: false,
    failed: state === 'failed',
    failureReason: state === 'failed' ? 'rejected by server (forbidden): not a member' : null,
  });
}

/** Sent messages with ids from `newest` down to `oldest`, newest first. */
export function range(newest: number, oldest: number, roomId = 'r1'): ChatMessage[] {
  const out: ChatMessage[] = [];
  for (let id = newest; id >= oldest; id -= 1) out.push(sent(id, roomId));
  return out;
}

/** The `_id`s, for compact assertions. */
export function ids(messages: ChatMessage[]): string[] {
  return messages.map((m) => m._id);
}
