/**
 * react-native-chatsync: offline-first chat for React Native on the New Architecture. Screens
 * render from native views (a timeline per open room, the room list) that show what the device
 * holds at once and send diffs after; sends are queued durably; the native side syncs in the
 * foreground, in the background and from the OS's background task.
 *
 * Modules: `api` (typed functions), `hooks` (GiftedChat-ready state), `views` (what the hooks
 * hold, pure), `errors`, `convert` (GiftedChat's shape), `native` (the TurboModule),
 * `generated/native` (the native JSON's types, rendered from Rust), `types`.
 */

export {
  addEventListener,
  configure,
  deleteMessage,
  discard,
  editMessage,
  getOutbox,
  getRooms,
  getSession,
  getStatus,
  getTyping,
  getUnreadTotal,
  login,
  logout,
  markRead,
  openDirectRoom,
  retry,
  sendMessage,
  setTyping,
  syncNow,
  toggleReaction,
} from './api';
export { ChatSyncError, toChatSyncError, type ErrorCode } from './errors';
export {
  useMessages,
  useNetworkStatus,
  useOutboxStatus,
  useRooms,
  useStatus,
  useSyncState,
  useTyping,
  useUnreadTotal,
  type UseMessagesOptions,
  type UseMessagesResult,
} from './hooks';
export { applyDiffs, RoomListModel, StatusModel, TimelineModel, TypingModel } from './views';
export type { RoomListState, StatusState, TimelineState, ViewHandle, ViewPort } from './views';
export type * from './types';
