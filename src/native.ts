/**
 * The TurboModule (src/NativeChatSync.ts) as the rest of src/ uses it: replies unwrapped into
 * values or `ChatSyncError`s, client events parsed, and the views (timelines, the room list)
 * opened with ids chosen here, so a view's first update (its reset, which may arrive before the
 * open call resolves) is never missed. Everything that touches React Native's runtime is here.
 */

import { Platform } from 'react-native';
import type { EventSubscription } from 'react-native';

import NativeChatSync, { type Spec } from './NativeChatSync';
import { ChatSyncError, unwrapReply } from './errors';
import type { JsClientEvent, JsPagination } from './generated/native';
import type { ViewHandle, ViewPort } from './views';

const NOT_LINKED_MESSAGE =
  "The native module 'ChatSync' is not linked. " +
  Platform.select({ ios: "Run 'pod install' in ios/ and rebuild. ", default: 'Rebuild the Android app. ' }) +
  'Expo Go cannot load it: use a development build (npx expo prebuild, then expo run:android / run:ios).';

/** The module, or an `E_NOT_LINKED` error saying how to link it. */
export function nativeModule(): Spec {
  if (!NativeChatSync) throw new ChatSyncError('E_NOT_LINKED', NOT_LINKED_MESSAGE);
  return NativeChatSync;
}

/** Calls the module and unwraps its reply. */
export async function invoke<T>(call: (module: Spec) => Promise<string>): Promise<T> {
  return unwrapReply<T>(await call(nativeModule()));
}

/** Calls `listener` with every client event. */
export function addClientEventListener(listener: (event: JsClientEvent) => void): EventSubscription {
  return nativeModule().onClientEvent((json) => listener(JSON.parse(json) as JsClientEvent));
}

const viewListeners = new Map<number, (diffsJson: string) => void>();
let viewSubscription: EventSubscription | null = null;
let nextViewId = 1;

function openView(open: (module: Spec, viewId: number) => Promise<string>, onDiffs: (json: string) => void): Promise<ViewHandle> {
  const module = nativeModule();
  if (!viewSubscription) {
    viewSubscription = module.onViewUpdate(({ viewId, diffs }) => viewListeners.get(viewId)?.(diffs));
  }
  const viewId = nextViewId++;
  viewListeners.set(viewId, onDiffs);
  const close = () => {
    if (viewListeners.delete(viewId)) module.closeView(viewId);
  };
  return invoke<null>((m) => open(m, viewId)).then(
    () => ({
      paginateBackwards: (count: number) => invoke<JsPagination>((m) => m.paginateBackwards(viewId, count)),
      close,
    }),
    (error: unknown) => {
      viewListeners.delete(viewId);
      throw error;
    },
  );
}

/** The views of the native module, for the models of src/views.ts. */
export const nativeViews: ViewPort = {
  openTimeline: (roomId, onDiffs) => openView((m, id) => m.openTimeline(id, roomId), onDiffs),
  openRoomList: (onDiffs) => openView((m, id) => m.openRoomList(id), onDiffs),
};
