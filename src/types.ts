/**
 * The shapes this package makes in JS from the native ones (src/generated/native.ts): messages
 * in GiftedChat's shape, rooms with converted messages, the session's user. The native shapes
 * themselves are not restated here; they are rendered from the Rust types.
 */

import type { JsMessageState, JsNetworkStatus, JsPart, JsReaction, JsSyncState } from './generated/native';

export type {
  AuthOptions,
  ConfigureOptions,
  JsClientEvent as ChatSyncEvent,
  JsChangeKind as ChangeKind,
  JsOutboxEntry as OutboxEntry,
  JsPagination as PaginationOutcome,
  JsStatus as ClientStatus,
  JsSyncReport as SyncReport,
  LoginUser,
  ProbeOptions,
} from './generated/native';

/** Delivery state of a message. */
export type MessageState = JsMessageState;
/** Network status as the core sees it (`unknown` before the first answer). */
export type NetworkStatus = JsNetworkStatus;
/** What the sync engine is doing. */
export type SyncState = JsSyncState;
/** One part of a multipart message. */
export type MessagePart = JsPart;
/** The reactions of one key on a message: how many, and whether the user is among them. */
export type Reaction = JsReaction;

/** A user as shown next to a message (GiftedChat's `user`). */
export interface ChatUser {
  _id: string;
  name: string;
  avatar?: string;
}

/**
 * The fields react-native-gifted-chat's `IMessage` reads, restated so `tsc` proves
 * {@link ChatMessage} fits without depending on GiftedChat's own types.
 */
export interface GiftedChatMessageShape {
  _id: string | number;
  text: string;
  createdAt: Date | number;
  user: { _id: string | number; name?: string; avatar?: string };
  pending?: boolean;
  sent?: boolean;
}

/**
 * A message in GiftedChat's shape (`_id`, `text`, `createdAt: Date`, `user`, `pending`, `sent`)
 * plus chatsync's own fields, the chat model's among them: `editedAt` (null: never edited),
 * `deleted` (a tombstone: empty text, its place kept), `reactions`, `readBy` (who else has read
 * up to it) and `pendingChange` (an edit, deletion or reaction of this device still queued).
 */
export interface ChatMessage {
  _id: string;
  serverId: number | null;
  localId: string | null;
  roomId: string;
  text: string;
  createdAt: Date;
  user: ChatUser;
  state: MessageState;
  pending: boolean;
  sent: boolean;
  failed: boolean;
  failureReason: string | null;
  parts: MessagePart[];
  editedAt: Date | null;
  deleted: boolean;
  reactions: Reaction[];
  readBy: string[];
  pendingChange: boolean;
}

/** Who is logged in on this device. */
export interface Session {
  user: ChatUser;
}

/** A room as the device knows it, with the user's unread count (the server's; 0 once marked read here). */
export interface RoomSummary {
  id: string;
  name: string | null;
  memberIds: string[];
  lastMessage: ChatMessage | null;
  unread: number;
}
