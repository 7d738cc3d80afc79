// How failures reach JS: every promise rejects with one of the codes of src/errors.ts and the
// core's readable message. Plain Kotlin, tested on the JVM.
package dev.chatsync.reactnative

import dev.chatsync.ChatException

/** A precondition of the module itself (not configured, nobody logged in). */
class ModuleStateException(val code: String, message: String) : IllegalStateException(message)

/** Rejection codes; the same strings as `ErrorCodes` in src/errors.ts. */
object ErrorCodes {
    const val OFFLINE = "E_OFFLINE"
    const val UNAUTHORIZED = "E_UNAUTHORIZED"
    const val NOT_FOUND = "E_NOT_FOUND"
    const val REJECTED = "E_REJECTED"
    const val PROTOCOL = "E_PROTOCOL"
    const val STORAGE = "E_STORAGE"
    const val INVALID_INPUT = "E_INVALID_INPUT"
    const val BUSY = "E_BUSY"
    const val SHUT_DOWN = "E_SHUT_DOWN"
    const val NOT_CONFIGURED = "E_NOT_CONFIGURED"
    const val NOT_LOGGED_IN = "E_NOT_LOGGED_IN"
    const val INTERNAL = "E_INTERNAL"

    /** The code and message JS gets for [error]. */
    fun of(error: Throwable): Pair<String, String> {
        val code = when (error) {
            is ChatException.Offline -> OFFLINE
            is ChatException.Unauthorized -> UNAUTHORIZED
            is ChatException.NotFound -> NOT_FOUND
            is ChatException.Rejected -> REJECTED
            is ChatException.Protocol -> PROTOCOL
            is ChatException.Storage -> STORAGE
            is ChatException.InvalidInput -> INVALID_INPUT
            is ChatException.Busy -> BUSY
            is ChatException.ShutDown -> SHUT_DOWN
            is ChatException.Internal -> INTERNAL
            is InvalidOptionsException -> INVALID_INPUT
            is ModuleStateException -> error.code
            else -> INTERNAL
        }
        val message = error.message?.takeIf { it.isNotBlank() } ?: error.javaClass.simpleName
        return code to message
    }
}
