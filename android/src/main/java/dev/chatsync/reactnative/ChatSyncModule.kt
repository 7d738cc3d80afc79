// The TurboModule `ChatSync`: implements the base class React Native's codegen generates from
// src/NativeChatSync.ts. Each method runs the Rust host's call off the UI thread and resolves
// the promise with its JSON reply as it is (the host never throws: errors are in the reply);
// the host's events go to JS through the codegen-typed emitters; the app's foreground and
// background changes go to the host. Android-only concern: none of the host logic is here.
package dev.chatsync.reactnative

import com.facebook.react.bridge.Arguments
import com.facebook.react.bridge.LifecycleEventListener
import com.facebook.react.bridge.Promise
import com.facebook.react.bridge.ReactApplicationContext
import dev.chatsync.AppState
import dev.chatsync.ChatHost
import dev.chatsync.HostListener
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch

/** The native side of src/NativeChatSync.ts. */
class ChatSyncModule(private val reactContext: ReactApplicationContext) :
    NativeChatSyncSpec(reactContext), LifecycleEventListener, HostListener {

    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.IO)
    private val host: ChatHost = ChatSyncHost.get(reactContext)

    init {
        reactContext.addLifecycleEventListener(this)
        host.setListener(this)
    }

    override fun invalidate() {
        host.setListener(null)
        reactContext.removeLifecycleEventListener(this)
        scope.cancel()
        super.invalidate()
    }

    // --- lifecycle: no JS needed ---

    override fun onHostResume() = host.setAppState(AppState.ACTIVE)

    override fun onHostPause() = host.setAppState(AppState.BACKGROUND)

    override fun onHostDestroy() = host.setAppState(AppState.BACKGROUND)

    // --- events (HostListener), called on a core thread ---

    override fun onClientEvent(eventJson: String) = emitOnClientEvent(eventJson)

    override fun onViewUpdate(viewId: UInt, diffsJson: String) {
        val update = Arguments.createMap()
        update.putInt("viewId", viewId.toInt())
        update.putString("diffs", diffsJson)
        emitOnViewUpdate(update)
    }

    // --- methods: the host's reply, resolved as it is ---

    /** Runs [call] on the IO dispatcher and resolves [promise] with its reply. */
    private fun reply(promise: Promise, call: suspend () -> String) {
        scope.launch { promise.resolve(call()) }
    }

    /** Like [reply], then brings the background job in line with the session. */
    private fun replyThenSchedule(promise: Promise, call: suspend () -> String) = reply(promise) {
        val answer = call()
        BackgroundSyncScheduler.follow(reactContext, host.isLoggedIn())
        answer
    }

    override fun configure(optionsJson: String, promise: Promise) = replyThenSchedule(promise) { host.configure(optionsJson) }

    override fun login(userJson: String, promise: Promise) = replyThenSchedule(promise) { host.login(userJson) }

    override fun logout(promise: Promise) = replyThenSchedule(promise) { host.logout() }

    override fun getSession(promise: Promise) = reply(promise) { host.session() }

    override fun openDirectRoom(userId: String, promise: Promise) = reply(promise) { host.openDirectRoom(userId) }

    override fun getRooms(promise: Promise) = reply(promise) { host.rooms() }

    override fun sendMessage(roomId: String, text: String, promise: Promise) = reply(promise) { host.sendText(roomId, text) }

    override fun retry(localId: String, promise: Promise) = reply(promise) { host.retry(localId) }

    override fun discard(localId: String, promise: Promise) = reply(promise) { host.discard(localId) }

    override fun editMessage(roomId: String, messageId: String, text: String, promise: Promise) =
        reply(promise) { host.editMessage(roomId, messageId, text) }

    override fun deleteMessage(roomId: String, messageId: String, promise: Promise) =
        reply(promise) { host.deleteMessage(roomId, messageId) }

    override fun toggleReaction(roomId: String, messageId: String, key: String, promise: Promise) =
        reply(promise) { host.toggleReaction(roomId, messageId, key) }

    override fun markRead(roomId: String, promise: Promise) = reply(promise) { host.markRead(roomId) }

    override fun setTyping(roomId: String, typing: Boolean, promise: Promise) =
        reply(promise) { host.setTyping(roomId, typing) }

    override fun getTyping(roomId: String, promise: Promise) = reply(promise) { host.typing(roomId) }

    override fun getUnreadTotal(promise: Promise) = reply(promise) { host.unreadTotal() }

    override fun syncNow(promise: Promise) = reply(promise) { host.syncNow() }

    override fun getOutbox(promise: Promise) = reply(promise) { host.outbox() }

    override fun getStatus(promise: Promise) = reply(promise) { host.status() }

    override fun openTimeline(viewId: Double, roomId: String, promise: Promise) =
        reply(promise) { host.openTimeline(viewId.toUInt(), roomId) }

    override fun openRoomList(viewId: Double, promise: Promise) = reply(promise) { host.openRoomList(viewId.toUInt()) }

    override fun paginateBackwards(viewId: Double, count: Double, promise: Promise) =
        reply(promise) { host.paginateBackwards(viewId.toUInt(), count.toUInt()) }

    override fun closeView(viewId: Double) = host.closeView(viewId.toUInt())
}
