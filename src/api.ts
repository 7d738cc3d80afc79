/**
 * The typed JS API: each function calls the native module, converts what it resolves with into
 * the public types, and turns rejections into {@link ChatSyncError}s.
 */

import {
  NativeEventNames,
  parseNativeEvent,
  toChatMessage,
  toClientStatus,
  toLoadEarlierResult,
  toRoomSummary,
  toSession,
} from './convert';
import { ChatSyncError, ErrorCodes, toChatSyncError } from './errors';
import { nativeEmitter, nativeModule } from './native';
import type {
  ChatMessage,
  ChatSyncEventOf,
  ClientStatus,
  ChatSyncEventType,
  ConfigureOptions,
  GetMessagesOptions,
  LoadEarlierOptions,
  LoadEarlierResult,
  LoginUser,
  OutboxEntry,
  RoomSummary,
  Session,
  SyncReport,
} from './types';

async function call<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw toChatSyncError(error);
  }
}

function requireText(value: string, what: string): void {
  if (typeof value !== 'string' || value.length === 0) {
    throw new ChatSyncError(ErrorCodes.INVALID_INPUT, `${what} must be a non-empty string`);
  }
}

/**
 * Stores the settings (the background task reads them when the OS starts the app for it) and,
 * when a user was logged in before, reopens their store. Resolves with that user's session, or
 * null when nobody is logged in. Call it once at startup, before anything else.
 */
export function configure(options: ConfigureOptions): Promise<Session | null> {
  return call(async () => {
    requireText(options.serverUrl, 'serverUrl');
    const session = await nativeModule().configure(options);
    return session ? toSession(session) : null;
  });
}

/**
 * Logs in (stored at once, profile uploaded when online), starts syncing and schedules the
 * background task. Works offline.
 */
export function login(user: LoginUser): Promise<Session> {
  return call(async () => {
    requireText(user.id, 'user.id');
    requireText(user.name, 'user.name');
    return toSession(await nativeModule().login(user));
  });
}

/** Stops syncing and cancels the background task. The user's store stays on the device. */
export function logout(): Promise<void> {
  return call(async () => {
    await nativeModule().logout();
  });
}

/** The stored session, readable offline; null when nobody is logged in. */
export function getSession(): Promise<Session | null> {
  return call(async () => {
    const session = await nativeModule().getSession();
    return session ? toSession(session) : null;
  });
}

/** Gets or creates the direct room with `userId` (needs the network the first time only). */
export function openDirectRoom(userId: string): Promise<RoomSummary> {
  return call(async () => {
    requireText(userId, 'userId');
    return toRoomSummary(await nativeModule().openDirectRoom(userId));
  });
}

/** Rooms held on the device. */
export function getRooms(): Promise<RoomSummary[]> {
  return call(async () => (await nativeModule().getRooms()).map(toRoomSummary));
}

/** Messages of a room from the device's store, newest first, pending and failed ones included. */
export function getMessages(roomId: string, options: GetMessagesOptions = {}): Promise<ChatMessage[]> {
  return call(async () => {
    requireText(roomId, 'roomId');
    return (await nativeModule().getMessages(roomId, options)).map(toChatMessage);
  });
}

/**
 * The page below `before` (the oldest server id the screen holds; the newest page when absent):
 * from the store first, then from the server. The anchor is explicit, so asking again after a
 * refresh never repeats a page.
 */
export function loadEarlier(roomId: string, options: LoadEarlierOptions = {}): Promise<LoadEarlierResult> {
  return call(async () => {
    requireText(roomId, 'roomId');
    return toLoadEarlierResult(await nativeModule().loadEarlier(roomId, options));
  });
}

/** Queues a text message durably (online or not) and resolves with its pending echo. */
export function sendMessage(roomId: string, text: string): Promise<ChatMessage> {
  return call(async () => {
    requireText(roomId, 'roomId');
    return toChatMessage(await nativeModule().sendMessage(roomId, text));
  });
}

/** Sends a failed message again (`localId` is the echo's `localId`). */
export function retry(localId: string): Promise<void> {
  return call(async () => {
    requireText(localId, 'localId');
    await nativeModule().retry(localId);
  });
}

/** Removes a failed or pending message from the outbox. */
export function discard(localId: string): Promise<void> {
  return call(async () => {
    requireText(localId, 'localId');
    await nativeModule().discard(localId);
  });
}

/** One sync plus an outbox flush now (pull-to-refresh). */
export function syncNow(): Promise<SyncReport> {
  return call(() => nativeModule().syncNow());
}

/** The outbox as it is stored. */
export function getOutbox(): Promise<OutboxEntry[]> {
  return call(() => nativeModule().getOutbox());
}

/** The client's current status: network, sync engine, outbox counts (as the last events said). */
export function getStatus(): Promise<ClientStatus> {
  return call(async () => toClientStatus(await nativeModule().getStatus()));
}

/** A subscription to events; `remove()` ends it. */
export interface EventSubscription {
  remove(): void;
}

/** Calls `listener` with every event of `type` the native side emits. */
export function addEventListener<T extends ChatSyncEventType>(
  type: T,
  listener: (event: ChatSyncEventOf<T>) => void,
): EventSubscription {
  const nativeName = NativeEventNames[type];
  const subscription = nativeEmitter().addListener(nativeName, (payload: unknown) => {
    const event = parseNativeEvent(nativeName, payload);
    if (event && event.type === type) listener(event as ChatSyncEventOf<T>);
  });
  return { remove: () => subscription.remove() };
}
