/**
 * What the hooks hold, as plain objects: a timeline and the room list kept equal to their
 * native views by applying the views' diffs (no re-read per event), and the client status kept
 * by the client's events. Each has `subscribe` / `getSnapshot` for `useSyncExternalStore`, and
 * talks to the native module only through a {@link ViewPort}, so Node tests drive them with
 * recorded native event sequences.
 */

import { toChatMessage, toRoomSummary } from './convert';
import { ChatSyncError, toChatSyncError } from './errors';
import type { JsClientEvent, JsDiff, JsMessage, JsPagination, JsRoom, JsStatus } from './generated/native';
import type { ChatMessage, NetworkStatus, RoomSummary, SyncState } from './types';

/** An open native view. */
export interface ViewHandle {
  /** Pages a timeline back (`0`: the configured page size). */
  paginateBackwards(count: number): Promise<JsPagination>;
  /** Stops the view; no update follows. */
  close(): void;
}

/** How the models reach the native views (src/native.ts in the app, a recording in tests). */
export interface ViewPort {
  /** Opens `roomId`'s timeline; `onDiffs` gets `JsDiff<JsMessage>[]` as JSON, a reset first. */
  openTimeline(roomId: string, onDiffs: (diffsJson: string) => void): Promise<ViewHandle>;
  /** Opens the room list; `onDiffs` gets `JsDiff<JsRoom>[]` as JSON, a reset first. */
  openRoomList(onDiffs: (diffsJson: string) => void): Promise<ViewHandle>;
}

/**
 * Applies native diffs to a converted copy of a list. Each item is converted once, when it
 * arrives; the rest are kept by reference (React skips them). With `reversed`, the copy is kept
 * in the opposite order of the native list (a timeline is oldest first natively, newest first
 * for GiftedChat), indices mapped accordingly.
 */
export function applyDiffs<N, T>(items: readonly T[], diffs: readonly JsDiff<N>[], convert: (n: N) => T, reversed = false): T[] {
  let out = items.slice();
  for (const d of diffs) {
    const n = out.length;
    switch (d.kind) {
      case 'reset': {
        const converted = d.items.map(convert);
        out = reversed ? converted.reverse() : converted;
        break;
      }
      case 'pushBack':
        if (reversed) out.unshift(convert(d.item));
        else out.push(convert(d.item));
        break;
      case 'pushFront':
        if (reversed) out.push(convert(d.item));
        else out.unshift(convert(d.item));
        break;
      case 'insert':
        checkIndex(d.index, n + 1, d.kind);
        out.splice(reversed ? n - d.index : d.index, 0, convert(d.item));
        break;
      case 'set':
        checkIndex(d.index, n, d.kind);
        out[reversed ? n - 1 - d.index : d.index] = convert(d.item);
        break;
      case 'remove':
        checkIndex(d.index, n, d.kind);
        out.splice(reversed ? n - 1 - d.index : d.index, 1);
        break;
    }
  }
  return out;
}

function checkIndex(index: number, limit: number, kind: string): void {
  if (!(index >= 0 && index < limit)) {
    throw new ChatSyncError('E_INTERNAL', `a ${kind} diff at ${index} does not fit a list of ${limit} (JS and native disagree)`);
  }
}

/** A tiny observable value for `useSyncExternalStore`. */
class Observable<S> {
  private listeners = new Set<() => void>();
  constructor(protected state: S) {}
  readonly subscribe = (listener: () => void): (() => void) => {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  };
  readonly getSnapshot = (): S => this.state;
  protected set(next: S): void {
    if (next === this.state) return;
    this.state = next;
    for (const l of [...this.listeners]) l();
  }
}

/** What `useMessages(roomId)` shows: GiftedChat's props. */
export interface TimelineState {
  /** Newest first, GiftedChat's shape. */
  messages: ChatMessage[];
  /** True until the first reset arrived. */
  isLoading: boolean;
  /** True while an older page is being fetched (GiftedChat's `isLoadingEarlier`). */
  isLoadingEarlier: boolean;
  /** Whether older messages may exist (GiftedChat's `loadEarlier`). */
  hasMore: boolean;
  /** The last failure, cleared by the next success. */
  error: ChatSyncError | null;
}

const INITIAL_TIMELINE: TimelineState = { messages: [], isLoading: true, isLoadingEarlier: false, hasMore: true, error: null };

/**
 * One room's timeline for one screen: opens the native view, applies its diffs, pages back on
 * request. `close()` ends it (the screen left); nothing is applied after.
 */
export class TimelineModel extends Observable<TimelineState> {
  private handle: ViewHandle | null = null;
  private closed = false;

  constructor(private readonly port: ViewPort, readonly roomId: string, private readonly pageSize = 0) {
    super(INITIAL_TIMELINE);
  }

  /** Opens the native timeline; its reset and diffs update the state from then on. */
  async open(): Promise<void> {
    try {
      const handle = await this.port.openTimeline(this.roomId, (json) => this.receive(json));
      if (this.closed) handle.close();
      else this.handle = handle;
    } catch (error) {
      this.fail(error);
    }
  }

  /** Applies one update of the native view (`JsDiff<JsMessage>[]` as JSON). */
  receive(diffsJson: string): void {
    if (this.closed) return;
    try {
      const diffs = JSON.parse(diffsJson) as JsDiff<JsMessage>[];
      const messages = applyDiffs(this.state.messages, diffs, toChatMessage, true);
      this.set({ ...this.state, messages, isLoading: false, error: null });
    } catch (error) {
      this.fail(error);
    }
  }

  /** GiftedChat's `onLoadEarlier`: one page older, shown through the diffs. */
  loadEarlier = async (): Promise<void> => {
    const handle = this.handle;
    if (!handle || this.closed || this.state.isLoadingEarlier || !this.state.hasMore) return;
    this.set({ ...this.state, isLoadingEarlier: true });
    try {
      const outcome = await handle.paginateBackwards(this.pageSize);
      if (!this.closed) this.set({ ...this.state, isLoadingEarlier: false, hasMore: outcome.hasMore, error: null });
    } catch (error) {
      if (!this.closed) this.set({ ...this.state, isLoadingEarlier: false, error: toChatSyncError(error) });
    }
  };

  /** Closes the native view. */
  close(): void {
    this.closed = true;
    this.handle?.close();
    this.handle = null;
  }

  private fail(error: unknown): void {
    if (!this.closed) this.set({ ...this.state, isLoading: false, isLoadingEarlier: false, error: toChatSyncError(error) });
  }
}

/** What `useRooms()` shows. */
export interface RoomListState {
  /** Most recently active first. */
  rooms: RoomSummary[];
  /** True until the first reset arrived. */
  isLoading: boolean;
  /** The last failure. */
  error: ChatSyncError | null;
}

/** The room list, kept by the native view's diffs. */
export class RoomListModel extends Observable<RoomListState> {
  private handle: ViewHandle | null = null;
  private closed = false;

  constructor(private readonly port: ViewPort) {
    super({ rooms: [], isLoading: true, error: null });
  }

  /** Opens the native room list. */
  async open(): Promise<void> {
    try {
      const handle = await this.port.openRoomList((json) => this.receive(json));
      if (this.closed) handle.close();
      else this.handle = handle;
    } catch (error) {
      if (!this.closed) this.set({ ...this.state, isLoading: false, error: toChatSyncError(error) });
    }
  }

  /** Applies one update (`JsDiff<JsRoom>[]` as JSON). */
  receive(diffsJson: string): void {
    if (this.closed) return;
    const diffs = JSON.parse(diffsJson) as JsDiff<JsRoom>[];
    this.set({ rooms: applyDiffs(this.state.rooms, diffs, toRoomSummary), isLoading: false, error: null });
  }

  /** Closes the native view. */
  close(): void {
    this.closed = true;
    this.handle?.close();
    this.handle = null;
  }
}

/** The client status the status hooks show. */
export interface StatusState {
  networkStatus: NetworkStatus;
  /** Like react-native-offline: true when the server answers, false when not, null before the first answer. */
  isConnected: boolean | null;
  syncState: SyncState;
  /** Messages queued, not yet accepted. */
  pending: number;
  /** Messages refused for good: retry or discard them. */
  failed: number;
  /** Unread messages over every room (the app badge). */
  unread: number;
}

function connected(status: NetworkStatus): boolean | null {
  return status === 'unknown' ? null : status === 'online';
}

/**
 * The status, kept by the client's events. The snapshot read at start (`getStatus()`) is used
 * only until the first event: an event is newer than any snapshot that raced it.
 */
export class StatusModel extends Observable<StatusState> {
  private heardEvent = false;

  constructor() {
    super({ networkStatus: 'unknown', isConnected: null, syncState: 'idle', pending: 0, failed: 0, unread: 0 });
  }

  /** The snapshot from `getStatus()`, unless an event came first. */
  snapshot(status: JsStatus): void {
    if (this.heardEvent) return;
    this.set({ ...status, isConnected: connected(status.networkStatus) });
  }

  /** Applies a client event; kinds that do not change the status are ignored. */
  event(event: JsClientEvent): void {
    const s = this.state;
    switch (event.type) {
      case 'networkStatusChanged':
        this.heardEvent = true;
        if (event.status !== s.networkStatus) this.set({ ...s, networkStatus: event.status, isConnected: connected(event.status) });
        break;
      case 'syncStateChanged':
        this.heardEvent = true;
        if (event.state !== s.syncState) this.set({ ...s, syncState: event.state });
        break;
      case 'outboxChanged':
        this.heardEvent = true;
        if (event.pending !== s.pending || event.failed !== s.failed) this.set({ ...s, pending: event.pending, failed: event.failed });
        break;
      case 'unreadChanged':
        this.heardEvent = true;
        if (event.total !== s.unread) this.set({ ...s, unread: event.total });
        break;
      case 'messagesChanged':
      case 'unauthorized':
      case 'typingChanged':
        break;
    }
  }
}

/**
 * Who is typing in one room (never the user): `getTyping()` once, then the client's
 * `typingChanged` events for that room (an event that comes first wins over the snapshot).
 */
export class TypingModel extends Observable<string[]> {
  private heardEvent = false;

  constructor(readonly roomId: string) {
    super([]);
  }

  /** The snapshot from `getTyping(roomId)`, unless an event came first. */
  snapshot(userIds: string[]): void {
    if (this.heardEvent) return;
    this.set(userIds);
  }

  /** Applies a client event; only this room's typing changes count. */
  event(event: JsClientEvent): void {
    if (event.type !== 'typingChanged' || event.roomId !== this.roomId) return;
    this.heardEvent = true;
    const same = event.userIds.length === this.state.length && event.userIds.every((u, i) => u === this.state[i]);
    if (!same) this.set(event.userIds);
  }
}
