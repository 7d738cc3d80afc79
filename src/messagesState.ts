/**
 * The state behind `useMessages(roomId)`, as a pure reducer.
 *
 * The hook only moves data: it reads the newest page from the store whenever the core says the
 * room changed, and older pages on `loadEarlier`. How those pages combine into the one
 * newest-first array GiftedChat renders (echoes replaced by sent messages, older pages kept below
 * a refreshed window, answers for a room the screen has left ignored) is decided here, where
 * plain Node tests can exercise it without a device.
 */

import type { ChatSyncError } from './errors';
import type { ChatMessage } from './types';

/** What `useMessages` exposes, minus the functions. */
export interface MessagesState {
  /** The room these messages belong to. */
  roomId: string;
  /** Newest first, GiftedChat-ready. */
  messages: ChatMessage[];
  /** True until the first page was read from the store. */
  isLoading: boolean;
  /** True while an older page is being fetched. */
  isLoadingEarlier: boolean;
  /** Whether older messages may exist (GiftedChat's `loadEarlier` prop). */
  hasMore: boolean;
  /** The last failure, cleared by the next success. */
  error: ChatSyncError | null;
}

/** Everything that changes a {@link MessagesState}. */
export type MessagesAction =
  /** The screen switched to another room: start over. */
  | { type: 'reset'; roomId: string }
  /** The newest `limit` messages as the store holds them now (newest first). */
  | { type: 'windowLoaded'; roomId: string; messages: ChatMessage[]; limit: number }
  | { type: 'loadEarlierStarted'; roomId: string }
  /** An older page (newest first) and whether still older ones exist. */
  | { type: 'loadEarlierFinished'; roomId: string; messages: ChatMessage[]; hasMore: boolean }
  | { type: 'failed'; roomId: string; error: ChatSyncError };

/** The state of a room before anything was read. */
export function initialMessagesState(roomId: string): MessagesState {
  return { roomId, messages: [], isLoading: true, isLoadingEarlier: false, hasMore: true, error: null };
}

/** The reducer of `useMessages`. Actions for another room than the state's are ignored. */
export function messagesReducer(state: MessagesState, action: MessagesAction): MessagesState {
  if (action.type === 'reset') {
    return action.roomId === state.roomId ? state : initialMessagesState(action.roomId);
  }
  if (action.roomId !== state.roomId) return state;
  switch (action.type) {
    case 'windowLoaded': {
      const merged = mergeNewestWindow(state.messages, action.messages, action.limit);
      // A window shorter than asked holds the whole room as stored; older pages may still exist
      // on the server, so only a finished `loadEarlier` may turn `hasMore` off.
      const hasMore = merged.replacedAll && action.messages.length >= action.limit ? true : state.hasMore;
      return { ...state, messages: merged.messages, isLoading: false, hasMore, error: null };
    }
    case 'loadEarlierStarted':
      return state.isLoadingEarlier ? state : { ...state, isLoadingEarlier: true };
    case 'loadEarlierFinished':
      return {
        ...state,
        messages: appendOlder(state.messages, action.messages),
        isLoadingEarlier: false,
        hasMore: action.hasMore,
        error: null,
      };
    case 'failed':
      return { ...state, isLoading: false, isLoadingEarlier: false, error: action.error };
    default:
      return state;
  }
}

/** Result of {@link mergeNewestWindow}. */
export interface MergedWindow {
  /** Newest first. */
  messages: ChatMessage[];
  /** True when the older messages held before were dropped because a gap could not be ruled out. */
  replacedAll: boolean;
}

/**
 * Combines a freshly read newest window with what the screen held.
 *
 * The window is the truth for everything it covers: echoes that became sent messages, failed
 * ones that were discarded, new arrivals. Held messages older than the window's oldest server id
 * are kept below it (pages the user scrolled back to). When the window is full and shares no
 * sent message with what was held, more than a page arrived at once and a gap may lie between the
 * two; the older messages are then dropped and paging back starts again from the window.
 */
export function mergeNewestWindow(held: ChatMessage[], window: ChatMessage[], limit: number): MergedWindow {
  const oldestInWindow = oldestServerId(window);
  if (oldestInWindow === null) {
    // Nothing sent in the window: it is all echoes (or empty); older sent messages stay.
    if (window.length >= limit) return { messages: dedupe(window), replacedAll: held.length > 0 };
    const keep = held.filter((m) => m.serverId !== null);
    return { messages: dedupe([...window, ...keep]), replacedAll: false };
  }
  const windowIds = new Set(window.map((m) => m._id));
  const overlaps = held.some((m) => m.serverId !== null && windowIds.has(m._id));
  const heldSent = held.some((m) => m.serverId !== null);
  if (window.length >= limit && heldSent && !overlaps) {
    return { messages: dedupe(window), replacedAll: true };
  }
  const older = held.filter((m) => m.serverId !== null && m.serverId < oldestInWindow && !windowIds.has(m._id));
  return { messages: dedupe([...window, ...older]), replacedAll: false };
}

/**
 * Appends an older page (newest first) below the held messages, skipping any message already
 * held and any that is not older than the oldest held one (a page that raced a window refresh).
 */
export function appendOlder(held: ChatMessage[], olderPage: ChatMessage[]): ChatMessage[] {
  const oldestHeld = oldestServerId(held);
  const heldIds = new Set(held.map((m) => m._id));
  const older = olderPage.filter(
    (m) => !heldIds.has(m._id) && (oldestHeld === null || m.serverId === null || m.serverId < oldestHeld),
  );
  return [...held, ...older];
}

/** The smallest server id among the messages, or null when none is sent. */
export function oldestServerId(messages: ChatMessage[]): number | null {
  let oldest: number | null = null;
  for (const m of messages) {
    if (m.serverId !== null && (oldest === null || m.serverId < oldest)) oldest = m.serverId;
  }
  return oldest;
}

/** Keeps the first occurrence of each `_id` (GiftedChat keys its list by `_id`). */
function dedupe(messages: ChatMessage[]): ChatMessage[] {
  const seen = new Set<string>();
  return messages.filter((m) => (seen.has(m._id) ? false : (seen.add(m._id), true)));
}
