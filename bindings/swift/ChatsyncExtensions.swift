// Idiomatic Swift over the generated bindings (Chatsync.swift): compile this file into the same
// module as the generated one. It adds AsyncStreams over the listener callbacks and the readable
// message of a ChatError.

import Foundation

extension ChatError {
    /// The readable text of the error ("offline: connection refused"); the case says what the
    /// app can do about it. (The generated `errorDescription` is a debug dump of the case.)
    public var message: String {
        switch self {
        case let .Offline(message), let .Unauthorized(message), let .NotFound(message),
             let .Rejected(message), let .Protocol(message), let .Storage(message),
             let .InvalidInput(message), let .Busy(message), let .ShutDown(message),
             let .Internal(message):
            return message
        }
    }
}

/// Feeds one AsyncStream from the core's listener callbacks (called on a background thread).
final class ClientEventStreamListener: ClientListener, @unchecked Sendable {
    private let continuation: AsyncStream<ClientEvent>.Continuation

    init(_ continuation: AsyncStream<ClientEvent>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: ClientEvent) {
        continuation.yield(event)
    }
}

extension ChatClient {
    /// Every `ClientEvent` of this client as an `AsyncStream`: the current state first
    /// (network, sync, outbox), then every change. The subscription ends when the stream
    /// terminates (the consuming task is cancelled or the stream is released). Events are
    /// buffered without bound so the core's listener task never waits for the consumer.
    public func events() throws -> AsyncStream<ClientEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: ClientEvent.self, bufferingPolicy: .unbounded)
        let subscription = try subscribe(listener: ClientEventStreamListener(continuation))
        continuation.onTermination = { _ in subscription.cancel() }
        return stream
    }

    /// The network status, current value first.
    public func networkStatusUpdates() throws -> AsyncStream<NetworkStatus> {
        try mapEvents { event in
            if case let .networkStatusChanged(status) = event { return status }
            return nil
        }
    }

    /// The sync engine's state, current value first.
    public func syncStateUpdates() throws -> AsyncStream<SyncState> {
        try mapEvents { event in
            if case let .syncStateChanged(state) = event { return state }
            return nil
        }
    }

    /// Ids of the added, replaced or removed messages of one room, as they change.
    public func messageChanges(roomId: String) throws -> AsyncStream<[String]> {
        try mapEvents { event in
            if case let .messagesChanged(room, ids) = event, room == roomId { return ids }
            return nil
        }
    }

    private func mapEvents<T: Sendable>(_ pick: @escaping @Sendable (ClientEvent) -> T?) throws -> AsyncStream<T> {
        let (stream, continuation) = AsyncStream.makeStream(of: T.self, bufferingPolicy: .unbounded)
        let events = try self.events()
        let task = Task {
            for await event in events {
                if let value = pick(event) { continuation.yield(value) }
            }
            continuation.finish()
        }
        continuation.onTermination = { _ in task.cancel() }
        return stream
    }
}
