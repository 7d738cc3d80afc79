// The React Native module `ChatSync`: the JS API's methods, each run on Dispatchers.IO (never the
// UI thread) and settled as a promise; the core's events emitted to JS; the app's foreground and
// background changes forwarded to the core with no JS code needed.
package dev.chatsync.reactnative

import com.facebook.react.bridge.Arguments
import com.facebook.react.bridge.LifecycleEventListener
import com.facebook.react.bridge.Promise
import com.facebook.react.bridge.ReactApplicationContext
import com.facebook.react.bridge.ReactContextBaseJavaModule
import com.facebook.react.bridge.ReactMethod
import com.facebook.react.bridge.ReadableMap
import com.facebook.react.modules.core.DeviceEventManagerModule
import kotlinx.coroutines.CancellationException
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.launch
import dev.chatsync.AppState
import dev.chatsync.ChatClient
import dev.chatsync.ClientEvent

/** The native side of src/api.ts. */
class ChatSyncModule(private val reactContext: ReactApplicationContext) :
    ReactContextBaseJavaModule(reactContext), LifecycleEventListener {

    private val scope = CoroutineScope(SupervisorJob() + Dispatchers.IO)
    private val settings = SettingsStore(reactContext)

    /** JS listeners registered through NativeEventEmitter; nothing is emitted while zero. */
    @Volatile private var jsListeners = 0

    private val sink: (ClientEvent) -> Unit = { event -> emit(event) }

    init {
        reactContext.addLifecycleEventListener(this)
        ChatSyncRuntime.addSink(sink)
        NetworkMonitor.start(reactContext)
    }

    override fun getName(): String = NAME

    override fun invalidate() {
        ChatSyncRuntime.removeSink(sink)
        reactContext.removeLifecycleEventListener(this)
        scope.cancel()
        super.invalidate()
    }

    // --- lifecycle: no JS needed ---

    override fun onHostResume() = ChatSyncRuntime.setAppState(AppState.ACTIVE)

    override fun onHostPause() = ChatSyncRuntime.setAppState(AppState.BACKGROUND)

    override fun onHostDestroy() = ChatSyncRuntime.setAppState(AppState.BACKGROUND)

    // --- events ---

    /** Called by NativeEventEmitter when JS adds a listener. */
    @ReactMethod
    fun addListener(@Suppress("UNUSED_PARAMETER") eventName: String) {
        jsListeners += 1
    }

    /** Called by NativeEventEmitter when JS removes listeners. */
    @ReactMethod
    fun removeListeners(count: Double) {
        jsListeners = maxOf(0, jsListeners - count.toInt())
    }

    private fun emit(event: ClientEvent) {
        if (jsListeners == 0 || !reactContext.hasActiveReactInstance()) return
        val (name, payload) = BridgeValues.event(event)
        reactContext
            .getJSModule(DeviceEventManagerModule.RCTDeviceEventEmitter::class.java)
            .emit(name, Arguments.makeNativeMap(payload))
    }

    // --- promises ---

    /** Runs [block] on the IO dispatcher and settles [promise] with its bridge value or error. */
    private fun settle(promise: Promise, block: suspend () -> Any?) {
        scope.launch {
            val result = try {
                block()
            } catch (e: CancellationException) {
                promise.reject(ErrorCodes.SHUT_DOWN, "the React instance was torn down")
                throw e
            } catch (t: Throwable) {
                val (code, message) = ErrorCodes.of(t)
                promise.reject(code, message, t)
                return@launch
            }
            promise.resolve(toBridge(result))
        }
    }

    @Suppress("UNCHECKED_CAST")
    private fun toBridge(value: Any?): Any? = when (value) {
        is Map<*, *> -> Arguments.makeNativeMap(value as Map<String, Any?>)
        is List<*> -> Arguments.makeNativeArray(value)
        is Unit -> null
        else -> value
    }

    private fun client(): ChatClient = ChatSyncRuntime.current()
        ?: throw ModuleStateException(ErrorCodes.NOT_LOGGED_IN, "nobody is logged in: call login() first")

    private fun requireOptions(): ChatSyncOptions = settings.options()
        ?: throw ModuleStateException(ErrorCodes.NOT_CONFIGURED, "call configure() before anything else")

    /** Opens the stored user's client, starts syncing, and makes sure the job is scheduled. */
    private fun openAndStart(options: ChatSyncOptions, user: StoredUser): ChatClient {
        val client = ChatSyncRuntime.open(reactContext.filesDir, options, user)
        ChatSyncRuntime.start()
        BackgroundSyncScheduler.ensureScheduled(reactContext)
        return client
    }

    @ReactMethod
    fun configure(options: ReadableMap, promise: Promise) = settle(promise) {
        val parsed = ChatSyncOptions.fromJs(options.toHashMap())
        settings.saveOptions(parsed)
        val user = settings.user() ?: return@settle null
        // Changed options reopen the client (ChatSyncRuntime.open compares them).
        openAndStart(parsed, user).session()?.let(BridgeValues::session)
    }

    @ReactMethod
    fun login(user: ReadableMap, promise: Promise) = settle(promise) {
        val options = requireOptions()
        val (stored, profile) = StoredUser.fromJs(user.toHashMap())
        val client = openAndStart(options, stored)
        val session = client.login(profile.name, profile.avatar)
        settings.saveUser(stored)
        BridgeValues.session(session)
    }

    @ReactMethod
    fun logout(promise: Promise) = settle(promise) {
        BackgroundSyncScheduler.cancel(reactContext)
        settings.clearUser()
        ChatSyncRuntime.close()
        null
    }

    @ReactMethod
    fun getSession(promise: Promise) = settle(promise) {
        ChatSyncRuntime.current()?.session()?.let(BridgeValues::session)
    }

    @ReactMethod
    fun openDirectRoom(userId: String, promise: Promise) = settle(promise) {
        BridgeValues.room(client().openDirectRoom(userId))
    }

    @ReactMethod
    fun getRooms(promise: Promise) = settle(promise) {
        client().rooms().map(BridgeValues::room)
    }

    @ReactMethod
    fun getMessages(roomId: String, options: ReadableMap, promise: Promise) = settle(promise) {
        val limit = if (options.hasKey("limit") && !options.isNull("limit")) options.getDouble("limit").toLong() else 0L
        val before = if (options.hasKey("before") && !options.isNull("before")) options.getDouble("before").toLong() else null
        if (limit < 0 || (before != null && before < 0)) throw InvalidOptionsException("limit and before must not be negative")
        val pageSize = if (limit > 0) limit else requireOptions().effectivePageSize.toLong()
        BridgeValues.messages(client().messages(roomId, pageSize.toUInt(), before?.toULong()))
    }

    @ReactMethod
    fun loadEarlier(roomId: String, options: ReadableMap, promise: Promise) = settle(promise) {
        val limit = if (options.hasKey("limit") && !options.isNull("limit")) options.getDouble("limit").toLong() else 0L
        val before = if (options.hasKey("before") && !options.isNull("before")) options.getDouble("before").toLong() else null
        if (limit < 0 || (before != null && before < 0)) throw InvalidOptionsException("limit and before must not be negative")
        val pageSize = if (limit > 0) limit else requireOptions().effectivePageSize.toLong()
        // The anchor is explicit (the oldest server id the screen holds): a page never repeats.
        BridgeValues.loadOlder(client().loadOlder(roomId, before?.toULong(), pageSize.toUInt()))
    }

    @ReactMethod
    fun sendMessage(roomId: String, text: String, promise: Promise) = settle(promise) {
        BridgeValues.message(client().sendText(roomId, text))
    }

    @ReactMethod
    fun retry(localId: String, promise: Promise) = settle(promise) {
        client().retry(localId)
        null
    }

    @ReactMethod
    fun discard(localId: String, promise: Promise) = settle(promise) {
        client().discard(localId)
        null
    }

    @ReactMethod
    fun syncNow(promise: Promise) = settle(promise) {
        BridgeValues.syncReport(client().syncOnce())
    }

    @ReactMethod
    fun getOutbox(promise: Promise) = settle(promise) {
        client().outbox().map(BridgeValues::outboxEntry)
    }

    @ReactMethod
    fun getStatus(promise: Promise) = settle(promise) {
        BridgeValues.status(ChatSyncRuntime.status)
    }

    companion object {
        /** The module's name in `NativeModules`. */
        const val NAME = "ChatSync"
    }
}
