// Authenticated encryption of one secret value: AES-GCM with a fresh IV per value (the Keystore
// key generates it) and the value's slot name as associated data, so a ciphertext moved to
// another slot does not open. Plain javax.crypto: the JVM tests run it with a software key.
package dev.chatsync.reactnative

import java.nio.ByteBuffer
import java.security.GeneralSecurityException
import javax.crypto.Cipher
import javax.crypto.SecretKey
import javax.crypto.spec.GCMParameterSpec

/** Seals and opens values with the key [key] returns. */
class TokenCipher(private val key: () -> SecretKey) {
    /** `[version][iv length][iv][ciphertext + 128-bit tag]`. */
    fun seal(slot: String, plaintext: ByteArray): ByteArray {
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.ENCRYPT_MODE, key())
        cipher.updateAAD(slot.toByteArray(Charsets.UTF_8))
        val iv = cipher.iv
        val sealed = cipher.doFinal(plaintext)
        return ByteBuffer.allocate(2 + iv.size + sealed.size).put(VERSION).put(iv.size.toByte()).put(iv).put(sealed).array()
    }

    /** The plaintext of [sealed]; throws [GeneralSecurityException] when it was altered, moved or sealed with another key. */
    fun open(slot: String, sealed: ByteArray): ByteArray {
        if (sealed.size < 2 || sealed[0] != VERSION) throw GeneralSecurityException("not a chatsync secret (version)")
        val ivLength = sealed[1].toInt()
        if (ivLength !in 12..16 || sealed.size < 2 + ivLength + TAG_BITS / 8) throw GeneralSecurityException("not a chatsync secret (length)")
        val cipher = Cipher.getInstance(TRANSFORMATION)
        cipher.init(Cipher.DECRYPT_MODE, key(), GCMParameterSpec(TAG_BITS, sealed, 2, ivLength))
        cipher.updateAAD(slot.toByteArray(Charsets.UTF_8))
        return cipher.doFinal(sealed, 2 + ivLength, sealed.size - 2 - ivLength)
    }

    private companion object {
        const val TRANSFORMATION = "AES/GCM/NoPadding"
        const val TAG_BITS = 128
        const val VERSION: Byte = 1
    }
}
