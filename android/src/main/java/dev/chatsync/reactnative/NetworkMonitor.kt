// Feeds the host's reachability hint from ConnectivityManager. Only a hint: the core's probe
// decides whether the server answers, but a lost network stops requests at once and a regained
// one triggers an immediate probe instead of waiting for the next interval.
package dev.chatsync.reactnative

import android.content.Context
import android.net.ConnectivityManager
import android.net.Network
import android.net.NetworkCapabilities
import android.net.NetworkRequest
import dev.chatsync.ChatHost

/** Registers one NetworkCallback per process (API 21+; `registerDefaultNetworkCallback` is 24+). */
object NetworkMonitor {
    private val lock = Any()
    private var registered = false
    private val available = HashSet<Network>()

    /** Starts monitoring for [host] (idempotent) and reports the current state at once. */
    fun start(context: Context, host: ChatHost) {
        val manager = context.getSystemService(Context.CONNECTIVITY_SERVICE) as? ConnectivityManager ?: return
        synchronized(lock) {
            if (registered) return
            registered = true
        }
        @Suppress("DEPRECATION") // activeNetworkInfo is the API-23 way to read the state once.
        host.setNetworkReachable(manager.activeNetworkInfo?.isConnected == true)
        val callback = object : ConnectivityManager.NetworkCallback() {
            override fun onAvailable(network: Network) = update(host) { available.add(network) }
            override fun onLost(network: Network) = update(host) { available.remove(network) }
        }
        val request = NetworkRequest.Builder().addCapability(NetworkCapabilities.NET_CAPABILITY_INTERNET).build()
        manager.registerNetworkCallback(request, callback)
    }

    private inline fun update(host: ChatHost, change: () -> Unit) {
        val reachable = synchronized(lock) {
            change()
            available.isNotEmpty()
        }
        host.setNetworkReachable(reachable)
    }
}
