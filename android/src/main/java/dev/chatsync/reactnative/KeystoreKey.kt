// The key that encrypts chatsync's secrets at rest: AES-256-GCM, generated inside the Android
// Keystore (framework API, level 23; not the deprecated Jetpack security-crypto), never
// exportable, so a copied file cannot be read on another device or outside this app.
package dev.chatsync.reactnative

import android.security.keystore.KeyGenParameterSpec
import android.security.keystore.KeyProperties
import java.security.KeyStore
import javax.crypto.KeyGenerator
import javax.crypto.SecretKey

/** The Keystore key of [EncryptedFileSecretStore]. */
object KeystoreKey {
    /** The key's alias in the app's Keystore. */
    const val ALIAS = "dev.chatsync.reactnative.secrets"

    private const val PROVIDER = "AndroidKeyStore"

    /** The key, generated on first use. */
    @Synchronized
    fun getOrCreate(): SecretKey {
        val store = KeyStore.getInstance(PROVIDER)
        store.load(null)
        (store.getKey(ALIAS, null) as? SecretKey)?.let { return it }
        val generator = KeyGenerator.getInstance(KeyProperties.KEY_ALGORITHM_AES, PROVIDER)
        generator.init(
            KeyGenParameterSpec.Builder(ALIAS, KeyProperties.PURPOSE_ENCRYPT or KeyProperties.PURPOSE_DECRYPT)
                .setBlockModes(KeyProperties.BLOCK_MODE_GCM)
                .setEncryptionPaddings(KeyProperties.ENCRYPTION_PADDING_NONE)
                .setKeySize(256)
                .build(),
        )
        return generator.generateKey()
    }
}
