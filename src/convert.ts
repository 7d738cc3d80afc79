/**
 * Conversions from what the native modules send (the core's shapes as plain maps, RFC 3339
 * strings) to the typed values the JS API returns (GiftedChat-ready messages with `Date`s, typed
 * events). GiftedChat's shape is made here, not in the core or the native modules. Pure, so they
 * run under plain Node in the tests.
 */

import type {
  ChatMessage,
  ChatSyncEvent,
  ChatUser,
  ClientStatus,
  LoadEarlierResult,
  NativeChatMessage,
  NativeChatUser,
  NativeLoadEarlierResult,
  NativeRoomSummary,
  NativeSession,
  NetworkStatus,
  RoomSummary,
  Session,
  SyncState,
} from './types';

/** Names of the events the native modules emit (one per kind of {@link ChatSyncEvent}). */
export const NativeEventNames = {
  messagesChanged: 'ChatSyncMessagesChanged',
  networkStatusChanged: 'ChatSyncNetworkStatus',
  syncStateChanged: 'ChatSyncSyncState',
  outboxChanged: 'ChatSyncOutbox',
  unauthorized: 'ChatSyncUnauthorized',
} as const;

const NETWORK_STATUSES: readonly NetworkStatus[] = ['unknown', 'online', 'offline'];
const SYNC_STATES: readonly SyncState[] = ['idle', 'syncing', 'live', 'backing_off', 'stopped'];

/** The core's user as GiftedChat's `user` (`_id`, `name`, `avatar`). */
export function toChatUser(raw: NativeChatUser): ChatUser {
  return raw.avatarUrl ? { _id: raw.id, name: raw.name, avatar: raw.avatarUrl } : { _id: raw.id, name: raw.name };
}

/**
 * The core's message in GiftedChat's shape: `_id` (stable: an echo keeps it when it turns sent),
 * `user`, `createdAt` as a `Date`, and the `pending` / `sent` / `failed` flags of its state.
 */
export function toChatMessage(raw: NativeChatMessage): ChatMessage {
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
    failureReason: raw.failureReason ?? null,
    parts: raw.parts,
  };
}

/** The native session with its user in GiftedChat's shape. */
export function toSession(raw: NativeSession): Session {
  return { user: toChatUser(raw.user) };
}

/** A native room summary with its last message converted. */
export function toRoomSummary(raw: NativeRoomSummary): RoomSummary {
  return { ...raw, lastMessage: raw.lastMessage ? toChatMessage(raw.lastMessage) : null };
}

/** A native `loadEarlier` result with its messages converted. */
export function toLoadEarlierResult(raw: NativeLoadEarlierResult): LoadEarlierResult {
  return { messages: raw.messages.map(toChatMessage), hasMore: raw.hasMore };
}

/** Reads a network status sent by the native side; anything unexpected counts as `unknown`. */
export function parseNetworkStatus(raw: unknown): NetworkStatus {
  return NETWORK_STATUSES.includes(raw as NetworkStatus) ? (raw as NetworkStatus) : 'unknown';
}

/** Reads the status the native side reports; unexpected values fall back to neutral ones. */
export function toClientStatus(raw: unknown): ClientStatus {
  const body = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
  return {
    networkStatus: parseNetworkStatus(body.networkStatus),
    syncState: SYNC_STATES.includes(body.syncState as SyncState) ? (body.syncState as SyncState) : 'idle',
    pending: typeof body.pending === 'number' ? body.pending : 0,
    failed: typeof body.failed === 'number' ? body.failed : 0,
  };
}

/**
 * Reads the payload of a native event into a typed event, or `null` when the name is not one of
 * ours or the payload does not have the expected shape (a version mismatch between JS and native).
 */
export function parseNativeEvent(name: string, payload: unknown): ChatSyncEvent | null {
  if (typeof payload !== 'object' || payload === null) return null;
  const body = payload as Record<string, unknown>;
  switch (name) {
    case NativeEventNames.messagesChanged:
      if (typeof body.roomId !== 'string' || !Array.isArray(body.ids)) return null;
      return { type: 'messagesChanged', roomId: body.roomId, ids: body.ids.map(String) };
    case NativeEventNames.networkStatusChanged:
      return { type: 'networkStatusChanged', status: parseNetworkStatus(body.status) };
    case NativeEventNames.syncStateChanged:
      if (!SYNC_STATES.includes(body.state as SyncState)) return null;
      return { type: 'syncStateChanged', state: body.state as SyncState };
    case NativeEventNames.outboxChanged:
      if (typeof body.pending !== 'number' || typeof body.failed !== 'number') return null;
      return { type: 'outboxChanged', pending: body.pending, failed: body.failed };
    case NativeEventNames.unauthorized:
      if (typeof body.reason !== 'string') return null;
      return { type: 'unauthorized', reason: body.reason };
    default:
      return null;
  }
}
