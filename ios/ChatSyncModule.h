// The TurboModule `ChatSync` on iOS: conforms to the protocol React Native's codegen generates
// from src/NativeChatSync.ts (ChatSyncSpec/ChatSyncSpec.h) and calls the Swift bridge.
#import <ChatSyncSpec/ChatSyncSpec.h>

NS_ASSUME_NONNULL_BEGIN

@interface ChatSyncModule : NativeChatSyncSpecBase <NativeChatSyncSpec>
@end

NS_ASSUME_NONNULL_END
