// Registers the TurboModule with React Native (autolinking finds this class).
package dev.chatsync.reactnative

import com.facebook.react.BaseReactPackage
import com.facebook.react.bridge.NativeModule
import com.facebook.react.bridge.ReactApplicationContext
import com.facebook.react.module.model.ReactModuleInfo
import com.facebook.react.module.model.ReactModuleInfoProvider

/** The package autolinking adds to the app: one TurboModule, `ChatSync`. */
class ChatSyncPackage : BaseReactPackage() {
    override fun getModule(name: String, reactContext: ReactApplicationContext): NativeModule? =
        if (name == NativeChatSyncSpec.NAME) ChatSyncModule(reactContext) else null

    override fun getReactModuleInfoProvider(): ReactModuleInfoProvider = ReactModuleInfoProvider {
        mapOf(
            NativeChatSyncSpec.NAME to ReactModuleInfo(
                NativeChatSyncSpec.NAME,
                ChatSyncModule::class.java.name,
                false, // canOverrideExistingModule
                false, // needsEagerInit
                false, // isCxxModule
                true, // isTurboModule
            ),
        )
    }
}
