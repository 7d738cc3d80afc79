// The configure() options and the logged-in user, persisted in the app's private
// SharedPreferences so that the background job can open the store after a reboot or when the OS
// cold-starts the process for it, without any JS running.
package dev.chatsync.reactnative

import android.content.Context
import android.content.SharedPreferences

/** Persistent settings of the module. Writes are synchronous (`commit`): callers are off the UI thread. */
class SettingsStore(context: Context) {
    private val prefs: SharedPreferences =
        context.applicationContext.getSharedPreferences(PREFS_NAME, Context.MODE_PRIVATE)

    /** The last configure() options, or null before the first configure(). */
    fun options(): ChatSyncOptions? {
        val stored = prefs.all.entries
            .filter { it.key.startsWith(OPTION_PREFIX) && it.value is String }
            .associate { it.key.removePrefix(OPTION_PREFIX) to it.value as String }
        return ChatSyncOptions.fromStored(stored)
    }

    /** Replaces the stored options. */
    fun saveOptions(options: ChatSyncOptions) {
        val editor = prefs.edit()
        prefs.all.keys.filter { it.startsWith(OPTION_PREFIX) }.forEach { editor.remove(it) }
        options.toStored().forEach { (k, v) -> editor.putString(OPTION_PREFIX + k, v) }
        check(editor.commit()) { "could not write the chatsync settings" }
    }

    /** The logged-in user, or null. */
    fun user(): StoredUser? {
        val id = prefs.getString(USER_ID, null) ?: return null
        return StoredUser(id, prefs.getString(USER_TOKEN, null))
    }

    /** Remembers the logged-in user. */
    fun saveUser(user: StoredUser) {
        val editor = prefs.edit().putString(USER_ID, user.id)
        if (user.token != null) editor.putString(USER_TOKEN, user.token) else editor.remove(USER_TOKEN)
        check(editor.commit()) { "could not write the chatsync settings" }
    }

    /** Forgets the logged-in user (logout). The user's store stays on disk. */
    fun clearUser() {
        prefs.edit().remove(USER_ID).remove(USER_TOKEN).commit()
    }

    private companion object {
        const val PREFS_NAME = "dev.chatsync.reactnative"
        const val OPTION_PREFIX = "option."
        const val USER_ID = "user.id"
        const val USER_TOKEN = "user.token"
    }
}
