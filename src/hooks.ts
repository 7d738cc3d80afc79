/**
 * React hooks over the API: `useMessages(roomId)` for a GiftedChat screen, `useNetworkStatus()`
 * like react-native-offline, `useOutboxStatus()` and `useSyncState()` for banners. The hooks only
 * move data between the native module and the pure reducers of messagesState.ts / statusState.ts.
 */

import { useCallback, useEffect, useReducer, useRef, useState } from 'react';

import { addEventListener, getMessages, getStatus, loadEarlier as loadEarlierPage } from './api';
import { coalesce } from './coalesce';
import { toChatSyncError } from './errors';
import { initialMessagesState, messagesReducer, oldestServerId, type MessagesState } from './messagesState';
import {
  affectsRoom,
  networkReducer,
  networkStateFromStatus,
  outboxReducer,
  syncStateReducer,
  type NetworkState,
  type OutboxState,
} from './statusState';
import type { SyncState } from './types';

/** Default page size of `useMessages` (the core's default too). */
export const DEFAULT_PAGE_SIZE = 50;

/** Options of {@link useMessages}. */
export interface UseMessagesOptions {
  /** Messages per page. Default 50. */
  pageSize?: number;
}

/** What {@link useMessages} returns: GiftedChat's `messages`, `loadEarlier`, `isLoadingEarlier`. */
export interface UseMessagesResult extends MessagesState {
  /** Fetches the page before the oldest shown message (GiftedChat's `onLoadEarlier`). */
  loadEarlier: () => void;
  /** Reads the newest page from the store again. */
  refresh: () => void;
}

/**
 * The messages of a room, newest first, ready for `<GiftedChat messages={...} />`. Reads the
 * store (works offline), re-reads it whenever the core reports a change in this room (new
 * messages, an echo that got sent or failed), and pages back on `loadEarlier`.
 */
export function useMessages(roomId: string | null | undefined, options: UseMessagesOptions = {}): UseMessagesResult {
  const room = roomId ?? '';
  const limit = options.pageSize ?? DEFAULT_PAGE_SIZE;
  const [state, dispatch] = useReducer(messagesReducer, room, initialMessagesState);
  const stateRef = useRef(state);
  stateRef.current = state;
  const refreshRef = useRef<() => void>(() => undefined);

  useEffect(() => {
    dispatch({ type: 'reset', roomId: room });
    if (!room) return undefined;
    let active = true;
    // Bursts of change events become at most one read in flight plus one queued.
    const reader = coalesce(
      async () => {
        const messages = await getMessages(room, { limit });
        if (active) dispatch({ type: 'windowLoaded', roomId: room, messages, limit });
      },
      (error) => dispatch({ type: 'failed', roomId: room, error: toChatSyncError(error) }),
    );
    refreshRef.current = () => reader.trigger();
    const subscription = addEventListener('messagesChanged', (event) => {
      if (affectsRoom(event, room)) reader.trigger();
    });
    reader.trigger();
    return () => {
      active = false;
      reader.cancel();
      refreshRef.current = () => undefined;
      subscription.remove();
    };
  }, [room, limit]);

  const loadEarlier = useCallback(() => {
    const current = stateRef.current;
    if (!current.roomId || current.isLoadingEarlier || !current.hasMore) return;
    const forRoom = current.roomId;
    dispatch({ type: 'loadEarlierStarted', roomId: forRoom });
    // From below what the screen holds: the anchor is explicit, so no page repeats.
    loadEarlierPage(forRoom, { before: oldestServerId(current.messages), limit }).then(
      (page) => dispatch({ type: 'loadEarlierFinished', roomId: forRoom, messages: page.messages, hasMore: page.hasMore }),
      (error: unknown) => dispatch({ type: 'failed', roomId: forRoom, error: toChatSyncError(error) }),
    );
  }, [limit]);

  const refresh = useCallback(() => refreshRef.current(), []);

  return { ...state, loadEarlier, refresh };
}

/**
 * `{ isConnected }` like react-native-offline: true when the server answers, false when it does
 * not, null until the first answer. Driven by the core's probe, not only the radio.
 */
export function useNetworkStatus(): NetworkState {
  const [state, setState] = useState<NetworkState>(() => networkStateFromStatus('unknown'));
  useEffect(() => {
    let active = true;
    let heardEvent = false;
    const subscription = addEventListener('networkStatusChanged', (event) => {
      heardEvent = true;
      setState((previous) => networkReducer(previous, event));
    });
    getStatus().then(
      (status) => {
        // An event that arrived meanwhile is newer than this answer.
        if (active && !heardEvent) setState(networkStateFromStatus(status.networkStatus));
      },
      () => undefined,
    );
    return () => {
      active = false;
      subscription.remove();
    };
  }, []);
  return state;
}

/** Outbox counts: how many messages wait to be sent, and how many the server refused. */
export function useOutboxStatus(): OutboxState {
  const [state, setState] = useState<OutboxState>({ pending: 0, failed: 0 });
  useEffect(() => {
    let active = true;
    let heardEvent = false;
    const subscription = addEventListener('outboxChanged', (event) => {
      heardEvent = true;
      setState((previous) => outboxReducer(previous, event));
    });
    getStatus().then(
      (status) => {
        if (active && !heardEvent) setState({ pending: status.pending, failed: status.failed });
      },
      () => undefined,
    );
    return () => {
      active = false;
      subscription.remove();
    };
  }, []);
  return state;
}

/** What the sync engine is doing (`live` while holding a long-poll). */
export function useSyncState(): SyncState {
  const [state, setState] = useState<SyncState>('idle');
  useEffect(() => {
    let active = true;
    let heardEvent = false;
    const subscription = addEventListener('syncStateChanged', (event) => {
      heardEvent = true;
      setState((previous) => syncStateReducer(previous, event));
    });
    getStatus().then(
      (status) => {
        if (active && !heardEvent) setState(status.syncState);
      },
      () => undefined,
    );
    return () => {
      active = false;
      subscription.remove();
    };
  }, []);
  return state;
}
