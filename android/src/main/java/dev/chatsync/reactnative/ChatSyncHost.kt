// The process's Rust host, built once with what only Android has: the app's no-backup folder
// (Auto Backup and device-to-device transfer never copy it) and a secret store encrypted with
// an Android Keystore key. The React module and the background job both get it here, so a
// process the OS started only for the job has the same host and the same one client.
package dev.chatsync.reactnative

import android.content.Context
import dev.chatsync.ChatHost
import java.io.File

/** Access to the process's [ChatHost]. */
object ChatSyncHost {
    /**
     * The host over `noBackupFilesDir`: the stores, `chatsync/settings.json` and the encrypted
     * secrets all live there, out of every backup whatever the app's backup rules say.
     */
    fun get(context: Context): ChatHost {
        val app = context.applicationContext
        val noBackup = app.noBackupFilesDir
        val secrets = EncryptedFileSecretStore(File(noBackup, "chatsync-secrets"), TokenCipher { KeystoreKey.getOrCreate() })
        val host = ChatHost.shared(noBackup.path, secrets)
        NetworkMonitor.start(app, host)
        return host
    }
}
