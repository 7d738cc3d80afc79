/**
 * React hooks over the models of src/views.ts: `useMessages(roomId)` for a GiftedChat screen
 * (a native timeline's diffs, no re-read per event), `useRooms()`, and the status hooks. The
 * hooks only open and close the models; what a diff or an event does is in src/views.ts, where
 * Node tests replay recorded native sequences through it.
 */

import { useEffect, useMemo, useState, useSyncExternalStore } from 'react';

import { addClientEventListener, nativeViews } from './native';
import { getStatus, getTyping } from './api';
import { RoomListModel, StatusModel, TimelineModel, TypingModel, type RoomListState, type StatusState, type TimelineState } from './views';
import type { SyncState } from './types';

/** Options of {@link useMessages}. */
export interface UseMessagesOptions {
  /** Messages per `loadEarlier` page. Default: the configured `pageSize` (the core's 50). */
  pageSize?: number;
}

/** What {@link useMessages} returns: GiftedChat's `messages`, `loadEarlier`, `isLoadingEarlier`. */
export interface UseMessagesResult extends TimelineState {
  /** One page older (GiftedChat's `onLoadEarlier`). */
  loadEarlier: () => void;
}

const EMPTY: TimelineState = { messages: [], isLoading: false, isLoadingEarlier: false, hasMore: false, error: null };
const noop = () => () => undefined;

/**
 * The messages of a room, newest first, ready for `<GiftedChat messages={...} />`: what the
 * device holds at once (offline too), then every change as it happens (new messages, an echo
 * turning sent or failed), and older pages on `loadEarlier`.
 */
export function useMessages(roomId: string | null | undefined, options: UseMessagesOptions = {}): UseMessagesResult {
  const [model, setModel] = useState<TimelineModel | null>(null);
  const pageSize = options.pageSize ?? 0;
  useEffect(() => {
    if (!roomId) {
      setModel(null);
      return undefined;
    }
    const m = new TimelineModel(nativeViews, roomId, pageSize);
    setModel(m);
    void m.open();
    return () => m.close();
  }, [roomId, pageSize]);
  const state = useSyncExternalStore(model?.subscribe ?? noop, model?.getSnapshot ?? (() => EMPTY));
  return { ...state, loadEarlier: () => void model?.loadEarlier() };
}

/** The rooms on the device with their last message, most recently active first, kept by the native room list's diffs. */
export function useRooms(): RoomListState {
  const [model] = useState(() => new RoomListModel(nativeViews));
  useEffect(() => {
    void model.open();
    return () => model.close();
  }, [model]);
  return useSyncExternalStore(model.subscribe, model.getSnapshot);
}

/** The client status: `getStatus()` once, then the client's events. */
export function useStatus(): StatusState {
  const [model] = useState(() => new StatusModel());
  useEffect(() => {
    const subscription = addClientEventListener((event) => model.event(event));
    getStatus().then((s) => model.snapshot(s), () => undefined);
    return () => subscription.remove();
  }, [model]);
  return useSyncExternalStore(model.subscribe, model.getSnapshot);
}

/** `{ isConnected, status }` like react-native-offline (driven by the core's probe, not only the radio). */
export function useNetworkStatus(): { isConnected: boolean | null; status: StatusState['networkStatus'] } {
  const s = useStatus();
  return { isConnected: s.isConnected, status: s.networkStatus };
}

/** Outbox counts: how many messages wait to be sent, how many the server refused. */
export function useOutboxStatus(): { pending: number; failed: number } {
  const s = useStatus();
  return { pending: s.pending, failed: s.failed };
}

/** What the sync engine is doing (`live` while holding a long-poll). */
export function useSyncState(): SyncState {
  return useStatus().syncState;
}

/** The unread total over every room, for an app badge (each room's count is in `useRooms()`). */
export function useUnreadTotal(): number {
  return useStatus().unread;
}

/** Who is typing in `roomId` now (never the user), for GiftedChat's `isTyping` and a "typing…" line. */
export function useTyping(roomId: string): string[] {
  const model = useMemo(() => new TypingModel(roomId), [roomId]);
  useEffect(() => {
    const subscription = addClientEventListener((event) => model.event(event));
    getTyping(roomId).then((ids) => model.snapshot(ids), () => undefined);
    return () => subscription.remove();
  }, [model, roomId]);
  return useSyncExternalStore(model.subscribe, model.getSnapshot);
}
