// What `configure()` and `login()` pass from JS, parsed and validated in one place, and how it
// is persisted so the background job can open the store when the OS cold-starts the process.
// No Android types here: the JVM tests run this file as it ships.
package dev.chatsync.reactnative

import dev.chatsync.ClientConfig
import dev.chatsync.ProbeConfig
import dev.chatsync.ProbeMethod
import dev.chatsync.TokenSource

/** Thrown for options JS got wrong; the module rejects with `E_INVALID_INPUT`. */
class InvalidOptionsException(message: String) : IllegalArgumentException(message)

/** How the client gets its bearer token (`ConfigureOptions.auth` in JS). */
sealed class AuthOption {
    /** The reference server's dev-mode `POST /v1/token`. */
    object DevTokenRoute : AuthOption()

    /** A token the app obtained itself. */
    data class Fixed(val token: String) : AuthOption()
}

/** The probe settings of `ConfigureOptions.probe`; null fields keep the core's defaults. */
data class ProbeOptions(
    val url: String? = null,
    val method: String? = null,
    val timeoutMs: Long? = null,
    val intervalMs: Long? = null,
    val onlyWhileOffline: Boolean? = null,
    val inBackground: Boolean? = null,
)

/** `ConfigureOptions` from JS. Null fields keep the core's mobile defaults. */
data class ChatSyncOptions(
    val serverUrl: String,
    val auth: AuthOption = AuthOption.DevTokenRoute,
    val pageSize: Int? = null,
    val maxMessagesPerRoom: Int? = null,
    val cacheCapacityBytes: Long? = null,
    val allowInsecureHttp: Boolean? = null,
    val probe: ProbeOptions? = null,
    val backgroundIntervalMs: Long? = null,
    /** Post local notifications for new messages found by background sync. */
    val notifications: Boolean = true,
) {
    /** The page size the module uses when JS passes none. */
    val effectivePageSize: Int get() = pageSize ?: DEFAULT_PAGE_SIZE

    /**
     * The core's config for [user], storing in [dataDir]. A token passed at login wins over
     * the configured auth.
     */
    fun toClientConfig(user: StoredUser, dataDir: String): ClientConfig {
        val token = when {
            user.token != null -> TokenSource.Fixed(user.token)
            auth is AuthOption.Fixed -> TokenSource.Fixed(auth.token)
            else -> TokenSource.DevTokenRoute
        }
        return ClientConfig(
            serverUrl = serverUrl,
            dataDir = dataDir,
            userId = user.id,
            token = token,
            cacheCapacityBytes = cacheCapacityBytes?.toULong(),
            pageSize = pageSize?.toUInt(),
            maxMessagesPerRoom = maxMessagesPerRoom?.toUInt(),
            probe = probe?.let {
                ProbeConfig(
                    url = it.url,
                    method = when (it.method) {
                        null -> null
                        "GET" -> ProbeMethod.GET
                        else -> ProbeMethod.HEAD
                    },
                    timeoutMs = it.timeoutMs?.toULong(),
                    intervalMs = it.intervalMs?.toULong(),
                    onlyWhileOffline = it.onlyWhileOffline,
                    inBackground = it.inBackground,
                )
            },
            backgroundIntervalMs = backgroundIntervalMs?.toULong(),
            longPollTimeoutMs = null,
            allowInsecureHttp = allowInsecureHttp,
        )
    }

    /** Flat string entries for SharedPreferences; [fromStored] reads them back. */
    fun toStored(): Map<String, String> {
        val out = linkedMapOf("serverUrl" to serverUrl, "notifications" to notifications.toString())
        when (auth) {
            is AuthOption.Fixed -> { out["auth"] = "fixed"; out["authToken"] = auth.token }
            AuthOption.DevTokenRoute -> out["auth"] = "devTokenRoute"
        }
        pageSize?.let { out["pageSize"] = it.toString() }
        maxMessagesPerRoom?.let { out["maxMessagesPerRoom"] = it.toString() }
        cacheCapacityBytes?.let { out["cacheCapacityBytes"] = it.toString() }
        allowInsecureHttp?.let { out["allowInsecureHttp"] = it.toString() }
        backgroundIntervalMs?.let { out["backgroundIntervalMs"] = it.toString() }
        probe?.url?.let { out["probe.url"] = it }
        probe?.method?.let { out["probe.method"] = it }
        probe?.timeoutMs?.let { out["probe.timeoutMs"] = it.toString() }
        probe?.intervalMs?.let { out["probe.intervalMs"] = it.toString() }
        probe?.onlyWhileOffline?.let { out["probe.onlyWhileOffline"] = it.toString() }
        probe?.inBackground?.let { out["probe.inBackground"] = it.toString() }
        return out
    }

    companion object {
        /** The core's default page size, used when JS passes none. */
        const val DEFAULT_PAGE_SIZE = 50

        /** Parses `ConfigureOptions` as React Native hands them over (`ReadableMap.toHashMap()`). */
        fun fromJs(map: Map<String, Any?>): ChatSyncOptions {
            val serverUrl = map.string("serverUrl")
            if (serverUrl.isNullOrBlank()) throw InvalidOptionsException("serverUrl must be a non-empty string")
            if (!serverUrl.startsWith("https://") && !serverUrl.startsWith("http://")) {
                throw InvalidOptionsException("serverUrl must start with https:// or http://, got '$serverUrl'")
            }
            @Suppress("UNCHECKED_CAST")
            val authMap = map["auth"] as? Map<String, Any?>
            val auth = when (val kind = authMap?.string("kind")) {
                null, "devTokenRoute" -> AuthOption.DevTokenRoute
                "fixed" -> AuthOption.Fixed(
                    authMap.string("token")?.takeIf { it.isNotEmpty() }
                        ?: throw InvalidOptionsException("auth.token must be a non-empty string"),
                )
                else -> throw InvalidOptionsException("auth.kind must be 'devTokenRoute' or 'fixed', got '$kind'")
            }
            @Suppress("UNCHECKED_CAST")
            val probeMap = map["probe"] as? Map<String, Any?>
            val probe = probeMap?.let {
                val method = it.string("method")
                if (method != null && method != "HEAD" && method != "GET") {
                    throw InvalidOptionsException("probe.method must be 'HEAD' or 'GET', got '$method'")
                }
                ProbeOptions(
                    url = it.string("url"),
                    method = method,
                    timeoutMs = it.positiveLong("timeoutMs", "probe."),
                    intervalMs = it.positiveLong("intervalMs", "probe."),
                    onlyWhileOffline = it["onlyWhileOffline"] as? Boolean,
                    inBackground = it["inBackground"] as? Boolean,
                )
            }
            return ChatSyncOptions(
                serverUrl = serverUrl,
                auth = auth,
                pageSize = map.positiveLong("pageSize")?.let { checkedInt(it, "pageSize") },
                maxMessagesPerRoom = map.positiveLong("maxMessagesPerRoom")?.let { checkedInt(it, "maxMessagesPerRoom") },
                cacheCapacityBytes = map.positiveLong("cacheCapacityBytes"),
                allowInsecureHttp = map["allowInsecureHttp"] as? Boolean,
                probe = probe,
                backgroundIntervalMs = map.positiveLong("backgroundIntervalMs"),
                notifications = map["notifications"] as? Boolean ?: true,
            )
        }

        /** Reads what [toStored] wrote; null when nothing (or something unreadable) is stored. */
        fun fromStored(stored: Map<String, String>): ChatSyncOptions? {
            val serverUrl = stored["serverUrl"] ?: return null
            val auth = when (stored["auth"]) {
                "fixed" -> AuthOption.Fixed(stored["authToken"] ?: return null)
                else -> AuthOption.DevTokenRoute
            }
            val hasProbe = stored.keys.any { it.startsWith("probe.") }
            return ChatSyncOptions(
                serverUrl = serverUrl,
                auth = auth,
                pageSize = stored["pageSize"]?.toIntOrNull(),
                maxMessagesPerRoom = stored["maxMessagesPerRoom"]?.toIntOrNull(),
                cacheCapacityBytes = stored["cacheCapacityBytes"]?.toLongOrNull(),
                allowInsecureHttp = stored["allowInsecureHttp"]?.toBooleanStrictOrNull(),
                probe = if (!hasProbe) null else ProbeOptions(
                    url = stored["probe.url"],
                    method = stored["probe.method"],
                    timeoutMs = stored["probe.timeoutMs"]?.toLongOrNull(),
                    intervalMs = stored["probe.intervalMs"]?.toLongOrNull(),
                    onlyWhileOffline = stored["probe.onlyWhileOffline"]?.toBooleanStrictOrNull(),
                    inBackground = stored["probe.inBackground"]?.toBooleanStrictOrNull(),
                ),
                backgroundIntervalMs = stored["backgroundIntervalMs"]?.toLongOrNull(),
                notifications = stored["notifications"]?.toBooleanStrictOrNull() ?: true,
            )
        }

        private fun checkedInt(value: Long, name: String): Int {
            if (value > Int.MAX_VALUE) throw InvalidOptionsException("$name is too large: $value")
            return value.toInt()
        }
    }
}

/** The logged-in user as stored between launches. */
data class StoredUser(
    val id: String,
    /** A token given at login (wins over the configured auth); null when none was given. */
    val token: String? = null,
) {
    /**
     * The store's folder name for this user: the id's UTF-8 bytes in hex, so no user id
     * (`..`, `a/b`, emoji) can escape the chatsync folder or clash with another.
     */
    val directoryName: String get() = id.toByteArray(Charsets.UTF_8).joinToString("") { "%02x".format(it) }

    companion object {
        /** Parses `login()`'s user from JS: `{id, name, avatar?, token?}`. */
        fun fromJs(map: Map<String, Any?>): Pair<StoredUser, Profile> {
            val id = map.string("id")?.takeIf { it.isNotEmpty() } ?: throw InvalidOptionsException("user.id must be a non-empty string")
            val name = map.string("name")?.takeIf { it.isNotEmpty() } ?: throw InvalidOptionsException("user.name must be a non-empty string")
            val token = map.string("token")?.takeIf { it.isNotEmpty() }
            return StoredUser(id, token) to Profile(name, map.string("avatar")?.takeIf { it.isNotEmpty() })
        }
    }
}

/** The profile `login()` uploads. */
data class Profile(val name: String, val avatar: String?)

private fun Map<String, Any?>.string(key: String): String? = when (val v = this[key]) {
    null -> null
    is String -> v
    else -> throw InvalidOptionsException("$key must be a string")
}

/** JS numbers arrive as Double; accept whole positive numbers only. */
private fun Map<String, Any?>.positiveLong(key: String, prefix: String = ""): Long? = when (val v = this[key]) {
    null -> null
    is Number -> {
        val d = v.toDouble()
        if (d <= 0 || d != Math.floor(d) || d > Long.MAX_VALUE.toDouble()) {
            throw InvalidOptionsException("$prefix$key must be a positive whole number, got $v")
        }
        d.toLong()
    }
    else -> throw InvalidOptionsException("$prefix$key must be a number")
}
