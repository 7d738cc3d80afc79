// The TurboModule `ChatSync` on iOS (New Architecture only; no legacy event-emitter module or
// export macros):
// every method hands its arguments to the Swift bridge (ChatSyncModuleBridge.swift) and resolves
// the promise with the Rust host's JSON reply as it is; the host's events go out through the
// codegen-typed emitters, so they reach JS on a bridgeless host with the interop layer compiled
// out. Not compiled on the project's Linux machines (no Xcode): kept correct by reading, and its
// selectors are the ones of the generated protocol (scripts/test-rn.sh generates it).
#import "ChatSyncModule.h"

#if __has_include(<react_native_chatsync/react_native_chatsync-Swift.h>)
#import <react_native_chatsync/react_native_chatsync-Swift.h>
#else
#import "react_native_chatsync-Swift.h"
#endif

@implementation ChatSyncModule {
  ChatSyncModuleBridge *_bridge;
}

+ (NSString *)moduleName
{
  return @"ChatSync";
}

- (instancetype)init
{
  if (self = [super init]) {
    __weak ChatSyncModule *weakSelf = self;
    _bridge = [[ChatSyncModuleBridge alloc]
        initWithOnClientEvent:^(NSString *json) {
          [weakSelf emitOnClientEvent:json];
        }
        onViewUpdate:^(NSInteger viewId, NSString *diffs) {
          [weakSelf emitOnViewUpdate:@{@"viewId" : @(viewId), @"diffs" : diffs}];
        }];
  }
  return self;
}

- (void)invalidate
{
  [_bridge invalidate];
}

- (std::shared_ptr<facebook::react::TurboModule>)getTurboModule:(const facebook::react::ObjCTurboModule::InitParams &)params
{
  return std::make_shared<facebook::react::NativeChatSyncSpecJSI>(params);
}

- (void)configure:(NSString *)optionsJson resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge configure:optionsJson done:^(NSString *reply) { resolve(reply); }];
}

- (void)login:(NSString *)userJson resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge login:userJson done:^(NSString *reply) { resolve(reply); }];
}

- (void)logout:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge logout:^(NSString *reply) { resolve(reply); }];
}

- (void)getSession:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge getSession:^(NSString *reply) { resolve(reply); }];
}

- (void)openDirectRoom:(NSString *)userId resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge openDirectRoom:userId done:^(NSString *reply) { resolve(reply); }];
}

- (void)getRooms:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge getRooms:^(NSString *reply) { resolve(reply); }];
}

- (void)sendMessage:(NSString *)roomId text:(NSString *)text resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge sendMessage:roomId text:text done:^(NSString *reply) { resolve(reply); }];
}

- (void)retry:(NSString *)localId resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge retry:localId done:^(NSString *reply) { resolve(reply); }];
}

- (void)discard:(NSString *)localId resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge discard:localId done:^(NSString *reply) { resolve(reply); }];
}

- (void)editMessage:(NSString *)roomId messageId:(NSString *)messageId text:(NSString *)text resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge editMessage:roomId messageId:messageId text:text done:^(NSString *reply) { resolve(reply); }];
}

- (void)deleteMessage:(NSString *)roomId messageId:(NSString *)messageId resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge deleteMessage:roomId messageId:messageId done:^(NSString *reply) { resolve(reply); }];
}

- (void)toggleReaction:(NSString *)roomId messageId:(NSString *)messageId key:(NSString *)key resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge toggleReaction:roomId messageId:messageId key:key done:^(NSString *reply) { resolve(reply); }];
}

- (void)markRead:(NSString *)roomId resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge markRead:roomId done:^(NSString *reply) { resolve(reply); }];
}

- (void)setTyping:(NSString *)roomId typing:(BOOL)typing resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge setTyping:roomId typing:typing done:^(NSString *reply) { resolve(reply); }];
}

- (void)getTyping:(NSString *)roomId resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge getTyping:roomId done:^(NSString *reply) { resolve(reply); }];
}

- (void)getUnreadTotal:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge getUnreadTotal:^(NSString *reply) { resolve(reply); }];
}

- (void)syncNow:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge syncNow:^(NSString *reply) { resolve(reply); }];
}

- (void)getOutbox:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge getOutbox:^(NSString *reply) { resolve(reply); }];
}

- (void)getStatus:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge getStatus:^(NSString *reply) { resolve(reply); }];
}

- (void)openTimeline:(NSInteger)viewId roomId:(NSString *)roomId resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge openTimeline:viewId roomId:roomId done:^(NSString *reply) { resolve(reply); }];
}

- (void)openRoomList:(NSInteger)viewId resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge openRoomList:viewId done:^(NSString *reply) { resolve(reply); }];
}

- (void)paginateBackwards:(NSInteger)viewId count:(NSInteger)count resolve:(RCTPromiseResolveBlock)resolve reject:(RCTPromiseRejectBlock)reject
{
  [_bridge paginateBackwards:viewId count:count done:^(NSString *reply) { resolve(reply); }];
}

- (void)closeView:(NSInteger)viewId
{
  [_bridge closeView:viewId];
}

@end
