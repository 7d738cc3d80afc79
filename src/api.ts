/**
 * The typed JS API: each function calls the native module with JSON, unwraps the reply and
 * converts what it holds into the shapes of src/types.ts. Rejections are `ChatSyncError`s.
 */

import { toChatMessage, toRoomSummary, toSession } from './convert';
import { ChatSyncError } from './errors';
import type { JsMessage, JsRoom, JsSession } from './generated/native';
import { addClientEventListener, invoke } from './native';
import type {
  ChatMessage,
  ChatSyncEvent,
  ClientStatus,
  ConfigureOptions,
  LoginUser,
  OutboxEntry,
  RoomSummary,
  Session,
  SyncReport,
} from './types';

function requireText(value: unknown, what: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ChatSyncError('E_INVALID_INPUT', `${what} must be a non-empty string`);
  }
}

/**
 * Validates and stores the options (the background task reads them when the OS starts the app
 * for it) and, when a user was logged in before, reopens their store and starts syncing.
 * Resolves with that user's session, or null. Call it once at startup, before anything else.
 */
export async function configure(options: ConfigureOptions): Promise<Session | null> {
  const session = await invoke<JsSession | null>((m) => m.configure(JSON.stringify(options)));
  return session ? toSession(session) : null;
}

/** Logs in (stored at once, profile uploaded when online), starts syncing, schedules the background task. Works offline. */
export async function login(user: LoginUser): Promise<Session> {
  return toSession(await invoke<JsSession>((m) => m.login(JSON.stringify(user))));
}

/** Stops syncing, forgets the user and their token, cancels the background task. The store stays on the device. */
export async function logout(): Promise<void> {
  await invoke<null>((m) => m.logout());
}

/** The session of the open client, readable offline; null when nobody is logged in. */
export async function getSession(): Promise<Session | null> {
  const session = await invoke<JsSession | null>((m) => m.getSession());
  return session ? toSession(session) : null;
}

/** Gets or creates the direct room with `userId` (needs the network the first time only). */
export async function openDirectRoom(userId: string): Promise<RoomSummary> {
  requireText(userId, 'userId');
  return toRoomSummary(await invoke<JsRoom>((m) => m.openDirectRoom(userId)));
}

/** The rooms held on the device, most recently active first (a screen uses `useRooms()`). */
export async function getRooms(): Promise<RoomSummary[]> {
  return (await invoke<JsRoom[]>((m) => m.getRooms())).map(toRoomSummary);
}

/** Queues a text message durably (online or not) and resolves with its pending echo. */
export async function sendMessage(roomId: string, text: string): Promise<ChatMessage> {
  requireText(roomId, 'roomId');
  return toChatMessage(await invoke<JsMessage>((m) => m.sendMessage(roomId, text)));
}

/** Sends a failed message again (`localId` is the echo's `localId`). */
export async function retry(localId: string): Promise<void> {
  requireText(localId, 'localId');
  await invoke<null>((m) => m.retry(localId));
}

/** Removes a failed or pending message from the outbox. */
export async function discard(localId: string): Promise<void> {
  requireText(localId, 'localId');
  await invoke<null>((m) => m.discard(localId));
}

/**
 * Replaces the text of one of the user's messages (`messageId`: the message's `_id`). Queued
 * like a send (offline too); a message still queued is rewritten instead. The timeline shows it
 * at once.
 */
export async function editMessage(roomId: string, messageId: string, text: string): Promise<void> {
  requireText(roomId, 'roomId');
  requireText(messageId, 'messageId');
  requireText(text, 'text');
  await invoke<null>((m) => m.editMessage(roomId, messageId, text));
}

/** Deletes one of the user's messages: it stays in place as a tombstone (a queued send is dropped). */
export async function deleteMessage(roomId: string, messageId: string): Promise<void> {
  requireText(roomId, 'roomId');
  requireText(messageId, 'messageId');
  await invoke<null>((m) => m.deleteMessage(roomId, messageId));
}

/** Adds the user's reaction `key` (an emoji) to a message, or removes it; resolves with whether the user reacts now. */
export async function toggleReaction(roomId: string, messageId: string, key: string): Promise<boolean> {
  requireText(roomId, 'roomId');
  requireText(messageId, 'messageId');
  requireText(key, 'key');
  return invoke<boolean>((m) => m.toggleReaction(roomId, messageId, key));
}

/** Marks a room read up to its newest message: its unread count drops at once, on the user's other devices after their next sync. */
export async function markRead(roomId: string): Promise<void> {
  requireText(roomId, 'roomId');
  await invoke<null>((m) => m.markRead(roomId));
}

/** Tells the room the user is typing (true) or stopped (false). Best effort: never queued, lapses by itself. */
export async function setTyping(roomId: string, typing: boolean): Promise<void> {
  requireText(roomId, 'roomId');
  await invoke<null>((m) => m.setTyping(roomId, typing));
}

/** Who is typing in a room now (a screen uses `useTyping(roomId)`). */
export async function getTyping(roomId: string): Promise<string[]> {
  requireText(roomId, 'roomId');
  return invoke<string[]>((m) => m.getTyping(roomId));
}

/** The unread total over every room, for an app badge (a screen uses `useUnreadTotal()`). */
export function getUnreadTotal(): Promise<number> {
  return invoke<number>((m) => m.getUnreadTotal());
}

/** One sync plus an outbox flush now (pull-to-refresh). */
export function syncNow(): Promise<SyncReport> {
  return invoke<SyncReport>((m) => m.syncNow());
}

/** The outbox as it is stored. */
export function getOutbox(): Promise<OutboxEntry[]> {
  return invoke<OutboxEntry[]>((m) => m.getOutbox());
}

/** The status now, read from the core: network, sync engine, outbox counts. */
export function getStatus(): Promise<ClientStatus> {
  return invoke<ClientStatus>((m) => m.getStatus());
}

/** Calls `listener` with every client event (network, sync state, outbox, refused token); `remove()` ends it. */
export function addEventListener(listener: (event: ChatSyncEvent) => void): { remove(): void } {
  return addClientEventListener(listener);
}
