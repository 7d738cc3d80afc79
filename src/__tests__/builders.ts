/** Test data builders: messages in the shape the native modules send, converted like the API does. */

import { toChatMessage } from '../convert';
import type { ChatMessage, NativeChatMessage } from '../types';

/** A sent message with server id `id` in `roomId`. */
export function nativeSent(id: number, roomId = 'r1', text = `message ${id}`): NativeChatMessage {
  return {
    id: String(id),
    serverId: id,
    localId: null,
    roomId,
    sender: { id: 'alice', name: 'Alice' },
    text,
    parts: [{ type: 'text/plain', content: text }],
    createdAt: new Date(Date.UTC(2026, 10, 25, 6, 0, id % 60)).toISOString(),
    state: 'sent',
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
    id: localId,
    serverId: null,
    localId,
    state,
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
