/**
 * GiftedChat's shape, made in JS from the core's (src/generated/native.ts): `_id`, `user`,
 * `createdAt` as a `Date`, the `pending` / `sent` / `failed` flags. Pure, so Node tests run it.
 */

import type { JsMessage, JsRoom, JsSession, JsUser } from './generated/native';
import type { ChatMessage, ChatUser, RoomSummary, Session } from './types';

/** The core's user as GiftedChat's `user`. */
export function toChatUser(raw: JsUser): ChatUser {
  return raw.avatarUrl ? { _id: raw.id, name: raw.name, avatar: raw.avatarUrl } : { _id: raw.id, name: raw.name };
}

/** The core's message in GiftedChat's shape; `_id` is stable when an echo turns sent. */
export function toChatMessage(raw: JsMessage): ChatMessage {
  return {
    _id: raw.id,
    serverId: raw.serverId,
    localId: raw.localId,
    roomId: raw.roomId,
    text: raw.text,
    createdAt: new Date(raw.createdAt),
    user: toChatUser(raw.sender),
    state: raw.state,
    pending: raw.state === 'pending',
    sent: raw.state === 'sent',
    failed: raw.state === 'failed',
    failureReason: raw.failureReason,
    parts: raw.parts,
    editedAt: raw.editedAt ? new Date(raw.editedAt) : null,
    deleted: raw.deleted,
    reactions: raw.reactions,
    readBy: raw.readBy,
    pendingChange: raw.pendingChange,
  };
}

/** The session with its user in GiftedChat's shape. */
export function toSession(raw: JsSession): Session {
  return { user: toChatUser(raw.user) };
}

/** A room with its last message converted. */
export function toRoomSummary(raw: JsRoom): RoomSummary {
  return {
    id: raw.id,
    name: raw.name,
    memberIds: raw.memberIds,
    lastMessage: raw.lastMessage ? toChatMessage(raw.lastMessage) : null,
    unread: raw.unread,
  };
}
