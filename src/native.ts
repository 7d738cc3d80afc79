/**
 * The bridge: the native module `ChatSync` (android/ and ios/) and its event emitter. Everything
 * that touches React Native's runtime objects lives here, so the rest of src/ stays pure.
 */

import { NativeEventEmitter, NativeModules, Platform } from 'react-native';

import { ChatSyncError, ErrorCodes } from './errors';
import type {
  NativeChatMessage,
  NativeLoadEarlierResult,
  NativeRoomSummary,
  NativeSession,
  OutboxEntry,
  SyncReport,
} from './types';

/** The methods the native module exports, with the raw shapes it resolves with. */
export interface ChatSyncNativeModule {
  configure(options: object): Promise<NativeSession | null>;
  login(user: object): Promise<NativeSession>;
  logout(): Promise<null>;
  getSession(): Promise<NativeSession | null>;
  openDirectRoom(userId: string): Promise<NativeRoomSummary>;
  getRooms(): Promise<NativeRoomSummary[]>;
  getMessages(roomId: string, options: object): Promise<NativeChatMessage[]>;
  loadEarlier(roomId: string, options: object): Promise<NativeLoadEarlierResult>;
  sendMessage(roomId: string, text: string): Promise<NativeChatMessage>;
  retry(localId: string): Promise<null>;
  discard(localId: string): Promise<null>;
  syncNow(): Promise<SyncReport>;
  getOutbox(): Promise<OutboxEntry[]>;
  getStatus(): Promise<{ networkStatus: string; syncState: string; pending: number; failed: number }>;
  /** Required by NativeEventEmitter on both platforms. */
  addListener(eventName: string): void;
  removeListeners(count: number): void;
}

const NOT_LINKED_MESSAGE =
  "The native module 'ChatSync' is not linked. " +
  Platform.select({ ios: "Run 'pod install' in ios/ and rebuild. ", default: 'Rebuild the Android app. ' }) +
  'Expo Go cannot load it: use a development build.';

let emitter: NativeEventEmitter | null = null;

/** The native module, or a `E_NOT_LINKED` error saying how to link it. */
export function nativeModule(): ChatSyncNativeModule {
  const module = NativeModules.ChatSync as ChatSyncNativeModule | undefined;
  if (!module) throw new ChatSyncError(ErrorCodes.NOT_LINKED, NOT_LINKED_MESSAGE);
  return module;
}

/** The one emitter of the module's events, created on first use. */
export function nativeEmitter(): NativeEventEmitter {
  if (!emitter) emitter = new NativeEventEmitter(nativeModule() as never);
  return emitter;
}
