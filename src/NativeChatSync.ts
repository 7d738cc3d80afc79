/**
 * The TurboModule spec of `ChatSync`: React Native's codegen generates the Android base class
 * (`NativeChatSyncSpec`) and the iOS protocol (`NativeChatSyncSpec`, with its JSI glue) from this
 * file; android/ and ios/ implement them. Events go through codegen-typed event emitters, so
 * they reach JS on a bridgeless host with the legacy interop layer compiled out.
 *
 * Values cross as JSON strings produced by the Rust host (`ChatHost`, bindings/src/host.rs) and
 * passed through by Kotlin and Swift untouched: every promise resolves with a reply,
 * `{"ok": value}` or `{"err": JsError}`, that src/native.ts unwraps. Their TypeScript types are
 * rendered from the Rust types into src/generated/native.ts: one source, no per-platform copy.
 */

import type { CodegenTypes, TurboModule } from 'react-native';
import { TurboModuleRegistry } from 'react-native';

/** An update of a view opened with `openTimeline` / `openRoomList`. */
export type ViewUpdate = {
  /** The id the caller gave the view. */
  viewId: CodegenTypes.Int32;
  /** `JsDiff[]` as JSON, to apply in order. */
  diffs: string;
};

export interface Spec extends TurboModule {
  /** `ConfigureOptions` as JSON; reply: `JsSession | null`. */
  configure(optionsJson: string): Promise<string>;
  /** `LoginUser` as JSON; reply: `JsSession`. */
  login(userJson: string): Promise<string>;
  /** Reply: `null`. */
  logout(): Promise<string>;
  /** Reply: `JsSession | null`. */
  getSession(): Promise<string>;
  /** Reply: `JsRoom`. */
  openDirectRoom(userId: string): Promise<string>;
  /** Reply: `JsRoom[]`. */
  getRooms(): Promise<string>;
  /** Reply: the pending echo, `JsMessage`. */
  sendMessage(roomId: string, text: string): Promise<string>;
  /** Reply: `null`. */
  retry(localId: string): Promise<string>;
  /** Reply: `null`. */
  discard(localId: string): Promise<string>;
  /** Replaces the text of one of the user's messages; reply: `null`. */
  editMessage(roomId: string, messageId: string, text: string): Promise<string>;
  /** Deletes one of the user's messages (a tombstone stays); reply: `null`. */
  deleteMessage(roomId: string, messageId: string): Promise<string>;
  /** Toggles the user's reaction `key` on a message; reply: `boolean` (reacting now). */
  toggleReaction(roomId: string, messageId: string, key: string): Promise<string>;
  /** Marks a room read up to its newest message; reply: `null`. */
  markRead(roomId: string): Promise<string>;
  /** Says the user is typing in a room (or stopped); reply: `null`. */
  setTyping(roomId: string, typing: boolean): Promise<string>;
  /** Reply: who is typing in a room now, `string[]`. */
  getTyping(roomId: string): Promise<string>;
  /** Reply: the unread total over every room, `number`. */
  getUnreadTotal(): Promise<string>;
  /** Reply: `JsSyncReport`. */
  syncNow(): Promise<string>;
  /** Reply: `JsOutboxEntry[]`. */
  getOutbox(): Promise<string>;
  /** Reply: `JsStatus`. */
  getStatus(): Promise<string>;
  /** Opens a room's timeline as view `viewId` (updates on `onViewUpdate`); reply: `null`. */
  openTimeline(viewId: CodegenTypes.Int32, roomId: string): Promise<string>;
  /** Opens the room list as view `viewId`; reply: `null`. */
  openRoomList(viewId: CodegenTypes.Int32): Promise<string>;
  /** Pages a timeline back by `count` (0: the configured page size); reply: `JsPagination`. */
  paginateBackwards(viewId: CodegenTypes.Int32, count: CodegenTypes.Int32): Promise<string>;
  /** Closes a view; no update follows. */
  closeView(viewId: CodegenTypes.Int32): void;

  /** `JsClientEvent` as JSON: network status, sync state, outbox counts, a refused token,
   * typing, the unread total. */
  readonly onClientEvent: CodegenTypes.EventEmitter<string>;
  /** The diffs of an open view. */
  readonly onViewUpdate: CodegenTypes.EventEmitter<ViewUpdate>;
}

/** The module, or `null` when it is not linked into the app (see src/native.ts). */
export default TurboModuleRegistry.get<Spec>('ChatSync');
