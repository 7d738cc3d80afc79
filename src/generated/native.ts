// Generated from bindings/src/js.rs and bindings/src/options.rs (the JSON the native
// host hands to JS) by the Rust test `typescript_declarations_are_current`. Do not
// edit: change the Rust types, then run
//   CHATSYNC_UPDATE_TS=1 cargo nextest run -p chatsync-ffi typescript

export type ErrorCode = "E_OFFLINE" | "E_UNAUTHORIZED" | "E_NOT_FOUND" | "E_REJECTED" | "E_PROTOCOL" | "E_STORAGE" | "E_INVALID_INPUT" | "E_BUSY" | "E_SHUT_DOWN" | "E_INTERNAL" | "E_NOT_CONFIGURED" | "E_NOT_LOGGED_IN" | "E_VIEW_CLOSED" | "E_NOT_LINKED";

export type JsError = { 
/**
 * What went wrong, to branch on.
 */
code: ErrorCode, 
/**
 * Readable text (the core's, said once).
 */
message: string, 
/**
 * `E_OFFLINE`: the server's Retry-After in seconds, when it gave one.
 */
retryAfterSecs: number | null, 
/**
 * `E_REJECTED`: the server's snake_case code (`forbidden`, `payload_too_large`).
 */
serverCode: string | null, };

export type JsUser = { 
/**
 * The user id.
 */
id: string, 
/**
 * Display name.
 */
name: string, 
/**
 * Avatar URL, when the profile has one.
 */
avatarUrl: string | null, };

export type JsMessageState = "sent" | "pending" | "failed";

export type JsPart = { 
/**
 * MIME type (`text/plain`).
 */
type: string, 
/**
 * Inline content.
 */
content: string | null, 
/**
 * Other fields of the part, as a JSON object string.
 */
extraJson: string | null, };

export type JsReaction = { 
/**
 * The key (an emoji or a short code).
 */
key: string, 
/**
 * How many members reacted with it.
 */
count: number, 
/**
 * Whether the user did.
 */
me: boolean, };

export type JsMessage = { 
/**
 * Stable id (see above).
 */
id: string, 
/**
 * The server's id, once sent. A JS number: exact up to 2^53.
 */
serverId: number | null, 
/**
 * The txn id, for messages sent from this device.
 */
localId: string | null, 
/**
 * The room.
 */
roomId: string, 
/**
 * Who sent it.
 */
sender: JsUser, 
/**
 * Text of the first text part.
 */
text: string, 
/**
 * Every part, in order.
 */
parts: Array<JsPart>, 
/**
 * RFC 3339, UTC, with milliseconds.
 */
createdAt: string, 
/**
 * Delivery state.
 */
state: JsMessageState, 
/**
 * The server's reason, when failed.
 */
failureReason: string | null, 
/**
 * When its sender last edited it, RFC 3339 (`null`: never).
 */
editedAt: string | null, 
/**
 * A tombstone: deleted by its sender (no text, no parts, no reactions; its place is kept).
 */
deleted: boolean, 
/**
 * Reactions per key, in the order first given.
 */
reactions: Array<JsReaction>, 
/**
 * Who (besides the sender) has read up to this message or later.
 */
readBy: Array<string>, 
/**
 * An edit, deletion or reaction of this device is still queued for it.
 */
pendingChange: boolean, };

export type JsRoom = { 
/**
 * The room id.
 */
id: string, 
/**
 * Its name, if it has one.
 */
name: string | null, 
/**
 * Member ids.
 */
memberIds: Array<string>, 
/**
 * The newest message held on the device.
 */
lastMessage: JsMessage | null, 
/**
 * The user's unread messages in it (the server's count; 0 once marked read here).
 */
unread: number, };

export type JsSession = { 
/**
 * The user and the profile given at login.
 */
user: JsUser, };

export type JsSyncReport = { 
/**
 * Whether the server answered.
 */
online: boolean, 
/**
 * New messages stored, per room id.
 */
newMessages: { [key in string]?: number }, 
/**
 * Outbox messages accepted during the call.
 */
sent: number, 
/**
 * Outbox messages still waiting.
 */
pending: number, 
/**
 * Outbox messages refused for good.
 */
failed: number, };

export type JsChangeKind = "send" | "edit" | "delete" | "react" | "receipt";

export type JsOutboxEntry = { 
/**
 * The txn id.
 */
localId: string, 
/**
 * The room it goes to.
 */
roomId: string, 
/**
 * Its text.
 */
text: string, 
/**
 * When it was queued, RFC 3339.
 */
createdAt: string, 
/**
 * `pending` or `failed`.
 */
state: JsMessageState, 
/**
 * Attempts so far.
 */
attempts: number, 
/**
 * Why the server refused it.
 */
failureReason: string | null, 
/**
 * What it does.
 */
kind: JsChangeKind, 
/**
 * The message an edit, deletion or reaction is for.
 */
targetId: string | null, };

export type JsNetworkStatus = "unknown" | "online" | "offline";

export type JsSyncState = "idle" | "syncing" | "live" | "backing_off" | "stopped";

export type JsStatus = { 
/**
 * Network status.
 */
networkStatus: JsNetworkStatus, 
/**
 * Sync state.
 */
syncState: JsSyncState, 
/**
 * Messages queued, not yet accepted.
 */
pending: number, 
/**
 * Messages refused for good.
 */
failed: number, 
/**
 * Unread messages over every room (the app badge).
 */
unread: number, };

export type JsClientEvent = { "type": "messagesChanged", 
/**
 * The room.
 */
roomId: string, 
/**
 * The changed message ids.
 */
ids: Array<string>, } | { "type": "networkStatusChanged", 
/**
 * The new status.
 */
status: JsNetworkStatus, } | { "type": "syncStateChanged", 
/**
 * The new state.
 */
state: JsSyncState, } | { "type": "outboxChanged", 
/**
 * Waiting.
 */
pending: number, 
/**
 * Refused for good.
 */
failed: number, } | { "type": "unauthorized", 
/**
 * The reason.
 */
reason: string, } | { "type": "typingChanged", 
/**
 * The room.
 */
roomId: string, 
/**
 * The users typing now (never the user).
 */
userIds: Array<string>, } | { "type": "unreadChanged", 
/**
 * The new total.
 */
total: number, };

export type JsDiff<T> = { "kind": "reset", 
/**
 * The whole list.
 */
items: Array<T>, } | { "kind": "pushBack", 
/**
 * The item.
 */
item: T, } | { "kind": "pushFront", 
/**
 * The item.
 */
item: T, } | { "kind": "insert", 
/**
 * Where.
 */
index: number, 
/**
 * The item.
 */
item: T, } | { "kind": "set", 
/**
 * Where.
 */
index: number, 
/**
 * The new content.
 */
item: T, } | { "kind": "remove", 
/**
 * Where.
 */
index: number, };

export type JsPagination = { 
/**
 * Messages added at the top (they arrive as diffs too).
 */
added: number, 
/**
 * Whether older messages exist still.
 */
hasMore: boolean, };

export type AuthOptions = { "kind": "devTokenRoute" } | { "kind": "fixed", 
/**
 * The bearer token (empty in the settings file: the secret store holds it).
 */
token: string, };

export type ProbeOptions = { 
/**
 * URL to probe; the server's `/health` when absent.
 */
url?: string, 
/**
 * `HEAD` (default) or `GET`.
 */
method?: 'HEAD' | 'GET', 
/**
 * Probe timeout in milliseconds.
 */
timeoutMs?: number, 
/**
 * Interval between probes while offline, in milliseconds.
 */
intervalMs?: number, 
/**
 * Probe only while offline (default true).
 */
onlyWhileOffline?: boolean, 
/**
 * Keep probing in the background (default false).
 */
inBackground?: boolean, };

export type ConfigureOptions = { 
/**
 * Base URL of the chat server, `https://...` (or `http://` to loopback).
 */
serverUrl: string, 
/**
 * Default `{ kind: 'devTokenRoute' }`. A `token` given to `login()` wins over it.
 */
auth?: AuthOptions, 
/**
 * Messages per page (timeline pagination, sync limit per room). Default: the core's (50).
 */
pageSize?: number, 
/**
 * Local history kept per room.
 */
maxMessagesPerRoom?: number, 
/**
 * sled page cache in bytes.
 */
cacheCapacityBytes?: number, 
/**
 * Allow plain `http://` to a non-loopback host. Default false.
 */
allowInsecureHttp?: boolean, 
/**
 * Connectivity probe settings.
 */
probe?: ProbeOptions, 
/**
 * Interval of sync + flush while the app is in the background and online, in ms.
 */
backgroundIntervalMs?: number, 
/**
 * Post local notifications for messages found by the background task. Default true.
 */
notifications?: boolean, };

export type LoginUser = { 
/**
 * The user id; also names the on-device store.
 */
id: string, 
/**
 * Display name.
 */
name: string, 
/**
 * Avatar URL.
 */
avatar?: string, 
/**
 * A bearer token for this user; when absent, `ConfigureOptions.auth` applies.
 */
token?: string, };
