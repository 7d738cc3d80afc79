/**
 * react-native-chatsync: offline-first chat for React Native. Messages are read from the
 * device's store (so every screen works offline), sends are queued durably, and the native side
 * syncs in the foreground, in the background, and from the OS's background task.
 *
 * Modules: `api` (the typed functions), `hooks` (GiftedChat-ready state), `errors` (the one
 * rejection type), `messagesState` / `statusState` (pure reducers), `convert` (bridge shapes),
 * `native` (the bridge itself), `types`.
 */

export {
  addEventListener,
  configure,
  discard,
  getMessages,
  getOutbox,
  getRooms,
  getSession,
  getStatus,
  loadEarlier,
  login,
  logout,
  openDirectRoom,
  retry,
  sendMessage,
  syncNow,
  type EventSubscription,
} from './api';
export { ChatSyncError, ErrorCodes, toChatSyncError, type ErrorCode } from './errors';
export {
  DEFAULT_PAGE_SIZE,
  useMessages,
  useNetworkStatus,
  useOutboxStatus,
  useSyncState,
  type UseMessagesOptions,
  type UseMessagesResult,
} from './hooks';
export {
  appendOlder,
  initialMessagesState,
  mergeNewestWindow,
  messagesReducer,
  type MessagesAction,
  type MessagesState,
} from './messagesState';
export { networkStateFromStatus, type NetworkState, type OutboxState } from './statusState';
export * from './types';
