/**
 * The state behind `useNetworkStatus()`, `useSyncState()` and `useOutboxStatus()`, as pure
 * functions of the core's events, so the mapping (`unknown` is not "offline") is tested under Node.
 */

import type { ChatSyncEvent, NetworkStatus, SyncState } from './types';

/** What `useNetworkStatus()` returns, like react-native-offline's `{ isConnected }`. */
export interface NetworkState {
  /** True when the server answers, false when it does not, null before the first answer. */
  isConnected: boolean | null;
  /** The core's status as it is. */
  status: NetworkStatus;
}

/** The network state for a status reported by the core. */
export function networkStateFromStatus(status: NetworkStatus): NetworkState {
  return { isConnected: status === 'unknown' ? null : status === 'online', status };
}

/** Applies an event to the network state; events of other kinds leave it as it is. */
export function networkReducer(state: NetworkState, event: ChatSyncEvent): NetworkState {
  if (event.type !== 'networkStatusChanged' || event.status === state.status) return state;
  return networkStateFromStatus(event.status);
}

/** What `useOutboxStatus()` returns. */
export interface OutboxState {
  /** Messages queued and not yet accepted by the server. */
  pending: number;
  /** Messages the server refused for good: retry or discard them. */
  failed: number;
}

/** Applies an event to the outbox counts; events of other kinds leave them as they are. */
export function outboxReducer(state: OutboxState, event: ChatSyncEvent): OutboxState {
  if (event.type !== 'outboxChanged') return state;
  if (event.pending === state.pending && event.failed === state.failed) return state;
  return { pending: event.pending, failed: event.failed };
}

/** Applies an event to the sync state; events of other kinds leave it as it is. */
export function syncStateReducer(state: SyncState, event: ChatSyncEvent): SyncState {
  return event.type === 'syncStateChanged' ? event.state : state;
}

/** Whether a `messagesChanged` event concerns the room a screen shows. */
export function affectsRoom(event: ChatSyncEvent, roomId: string): boolean {
  return event.type === 'messagesChanged' && event.roomId === roomId;
}
