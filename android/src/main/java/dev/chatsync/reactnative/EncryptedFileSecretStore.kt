// The secret store the Rust host keeps tokens in (the `SecretStore` contract of the bindings):
// one file per key, its value sealed by [TokenCipher], written atomically. No Android types: the
// JVM tests run it with a software key; on a phone it lives in `noBackupFilesDir` and its key
// in the Android Keystore (ChatSyncHost).
package dev.chatsync.reactnative

import dev.chatsync.SecretStore
import dev.chatsync.SecretStoreException
import java.io.File
import java.io.IOException
import java.security.GeneralSecurityException

/** Secrets in [dir], encrypted with [cipher]. */
class EncryptedFileSecretStore(private val dir: File, private val cipher: TokenCipher) : SecretStore {
    private val lock = Any()

    /** Keys are the host's fixed names (`chatsync.auth-token`); anything else is refused. */
    private fun file(key: String): File {
        if (!key.matches(Regex("[A-Za-z0-9._-]{1,64}"))) throw SecretStoreException.Unavailable("bad secret key: $key")
        return File(dir, "$key.sealed")
    }

    override fun get(key: String): String? = synchronized(lock) {
        val f = file(key)
        val sealed = try {
            if (!f.exists()) return null
            f.readBytes()
        } catch (e: IOException) {
            throw SecretStoreException.Unavailable("cannot read $key: ${e.message}")
        }
        try {
            String(cipher.open(key, sealed), Charsets.UTF_8)
        } catch (e: GeneralSecurityException) {
            // Sealed with a key this device no longer has (app data restored elsewhere, key
            // invalidated) or altered: unreadable for good, so forget it; the user signs in again.
            f.delete()
            null
        }
    }

    override fun set(key: String, value: String) = synchronized(lock) {
        val sealed = try {
            cipher.seal(key, value.toByteArray(Charsets.UTF_8))
        } catch (e: GeneralSecurityException) {
            throw SecretStoreException.Unavailable("cannot encrypt $key: ${e.message}")
        }
        try {
            if (!dir.isDirectory && !dir.mkdirs()) throw IOException("cannot create $dir")
            val tmp = File(dir, "${file(key).name}.tmp")
            tmp.writeBytes(sealed)
            if (!tmp.renameTo(file(key))) throw IOException("cannot replace ${file(key)}")
        } catch (e: IOException) {
            throw SecretStoreException.Unavailable("cannot write $key: ${e.message}")
        }
    }

    override fun remove(key: String) = synchronized(lock) {
        val f = file(key)
        if (f.exists() && !f.delete()) throw SecretStoreException.Unavailable("cannot remove $key")
    }
}
