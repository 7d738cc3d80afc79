/**
 * The public types of the package, and the raw shapes the native modules send across the bridge.
 *
 * Kept free of imports so that the pure logic (and its tests under plain Node) can use them
 * without React Native being present.
 */

/** How the native side gets its bearer token. */
export type AuthOptions =
  /** The reference server's dev-mode route `POST /v1/token` (quick start, local servers). */
  | { kind: 'devTokenRoute' }
  /** A token the app obtained itself; it cannot be refreshed, so a 401 is final. */
  | { kind: 'fixed'; token: string };

/** Connectivity probe settings, with react-native-offline's meanings. */
export interface ProbeOptions {
  /** URL to probe; the server's `/health` when absent. */
  url?: string;
  method?: 'HEAD' | 'GET';
  timeoutMs?: number;
  /** Interval between probes while offline. */
  intervalMs?: number;
  onlyWhileOffline?: boolean;
  inBackground?: boolean;
}

/** Options of {@link configure}. Only `serverUrl` is required; the rest have mobile defaults. */
export interface ConfigureOptions {
  /** Base URL of a protocol v1 server, e.g. `https://chat.example.com`. */
  serverUrl: string;
  /** Default `{ kind: 'devTokenRoute' }`. A `token` passed to {@link login} overrides it. */
  auth?: AuthOptions;
  /** Messages per page (history reads, `loadEarlier`). Default 50. */
  pageSize?: number;
  /** Local history kept per room. Default 20000. */
  maxMessagesPerRoom?: number;
  /** sled page cache in bytes. Default 4 MiB. */
  cacheCapacityBytes?: number;
  /** Allow plain `http://` to a non-loopback host. Default false. */
  allowInsecureHttp?: boolean;
  probe?: ProbeOptions;
  /** Interval of sync + flush while the app is in the background and online. Default 60000. */
  backgroundIntervalMs?: number;
  /** Post a local notification for new messages from background sync. Default true. */
  notifications?: boolean;
}

/** The user logging in (the original tutorial's Login screen). */
export interface LoginUser {
  /** The user id; also names the on-device store. */
  id: string;
  /** Display name. */
  name: string;
  /** Avatar URL. */
  avatar?: string;
  /** A bearer token for this user; when absent, `ConfigureOptions.auth` applies. */
  token?: string;
}

/** A user as shown next to a message (GiftedChat's `user`). */
export interface ChatUser {
  _id: string;
  name: string;
  avatar?: string;
}

/** A user as the native module sends it (the core's shape). */
export interface NativeChatUser {
  id: string;
  name: string;
  avatarUrl?: string;
}

/** Delivery state of a message. */
export type MessageState = 'sent' | 'pending' | 'failed';

/** One part of a multipart message, kept even when it is not text. */
export interface MessagePart {
  type: string;
  content?: string;
  /** Other fields of the part as a JSON object string. */
  extraJson?: string;
}

/**
 * A message as the native module sends it: the core's shape (what a chat is; no UI library's),
 * `createdAt` an RFC 3339 string. {@link ChatMessage} is made from it in src/convert.ts.
 */
export interface NativeChatMessage {
  /** Stable across its life: the local id for messages sent from this device, else the server id. */
  id: string;
  serverId: number | null;
  localId: string | null;
  roomId: string;
  sender: NativeChatUser;
  text: string;
  parts: MessagePart[];
  createdAt: string;
  state: MessageState;
  failureReason?: string | null;
}

/**
 * The fields react-native-gifted-chat's `IMessage` reads (its `_id`, `text`, `createdAt`, `user`,
 * `pending`, `sent`), restated here so `tsc` proves {@link ChatMessage} fits without depending on
 * GiftedChat's own types (which pull in reanimated and gesture-handler).
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
 * A message in the shape react-native-gifted-chat renders (`_id`, `text`, `createdAt: Date`,
 * `user`, `pending`, `sent`), plus chatsync's own fields. Made in JS from the core's shape
 * ({@link NativeChatMessage}) by `toChatMessage`.
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
  failureReason?: string | null;
  parts: MessagePart[];
}

/** Who is logged in on this device, as the native module sends it. */
export interface NativeSession {
  user: NativeChatUser;
}

/** Who is logged in on this device. */
export interface Session {
  user: ChatUser;
}

/** A room as the device knows it, as the native module sends it. */
export interface NativeRoomSummary {
  id: string;
  name: string | null;
  memberIds: string[];
  lastMessage: NativeChatMessage | null;
}

/** A room as the device knows it. */
export interface RoomSummary extends Omit<NativeRoomSummary, 'lastMessage'> {
  lastMessage: ChatMessage | null;
}

/** Result of {@link loadEarlier}, as the native module sends it. */
export interface NativeLoadEarlierResult {
  /** Newest first. */
  messages: NativeChatMessage[];
  hasMore: boolean;
}

/** Result of {@link loadEarlier}. */
export interface LoadEarlierResult {
  /** Newest first. */
  messages: ChatMessage[];
  /** Whether still older messages exist (on the device or the server). */
  hasMore: boolean;
}

/** Result of {@link syncNow}. */
export interface SyncReport {
  online: boolean;
  /** New messages stored, per room id. */
  newMessages: Record<string, number>;
  /** Outbox messages accepted by the server during this call. */
  sent: number;
  pending: number;
  failed: number;
}

/** An entry of the outbox. */
export interface OutboxEntry {
  localId: string;
  roomId: string;
  text: string;
  createdAt: string;
  state: MessageState;
  attempts: number;
  failureReason: string | null;
}

/** Network status as the core sees it (`unknown` before the first answer). */
export type NetworkStatus = 'unknown' | 'online' | 'offline';

/** What the sync engine is doing. */
export type SyncState = 'idle' | 'syncing' | 'live' | 'backing_off' | 'stopped';

/** The client's current status, as `getStatus()` returns it. */
export interface ClientStatus {
  networkStatus: NetworkStatus;
  syncState: SyncState;
  /** Messages queued and not yet accepted by the server. */
  pending: number;
  /** Messages the server refused for good. */
  failed: number;
}

/** Options of {@link loadEarlier}. */
export interface LoadEarlierOptions {
  /** The oldest server id the screen holds: the page ends below it. The newest page when absent. */
  before?: number | null;
  /** Default: the configured page size. */
  limit?: number;
}

/** Options of {@link getMessages}. */
export interface GetMessagesOptions {
  /** Default: the configured page size. */
  limit?: number;
  /** Only messages with a server id below this one. */
  before?: number;
}

/** Events the native side emits. */
export type ChatSyncEvent =
  | { type: 'messagesChanged'; roomId: string; ids: string[] }
  | { type: 'networkStatusChanged'; status: NetworkStatus }
  | { type: 'syncStateChanged'; state: SyncState }
  | { type: 'outboxChanged'; pending: number; failed: number }
  /** The server refused the token: sign the user in again (sent once per streak). */
  | { type: 'unauthorized'; reason: string };

/** The `type` of a {@link ChatSyncEvent}. */
export type ChatSyncEventType = ChatSyncEvent['type'];

/** The event of a given type. */
export type ChatSyncEventOf<T extends ChatSyncEventType> = Extract<ChatSyncEvent, { type: T }>;
