// Idiomatic Swift over the generated bindings (Chatsync.swift): compile this file into the same
// module as the generated one (the generated errors' `errorDescription` uses `message` from
// here). It adds the readable message of the errors, AsyncStreams over the listener callbacks,
// and the few lines that apply a view's diffs to an array.

import Foundation

extension ChatError {
    /// The readable text of the error ("offline: connection refused"), said once; the case
    /// says what the app can do about it. Also the error's `localizedDescription`.
    public var message: String {
        switch self {
        case let .Offline(detail, _), let .Unauthorized(detail), let .NotFound(detail),
             let .Rejected(_, detail), let .Protocol(detail), let .Storage(detail),
             let .InvalidInput(detail), let .Busy(detail), let .ShutDown(detail),
             let .Internal(detail):
            return detail
        }
    }
}

extension TokenProviderError {
    /// The provider's reason, as it was given.
    public var message: String {
        switch self {
        case let .Offline(reason), let .Unauthorized(reason), let .Other(reason):
            return reason
        }
    }
}

/// Feeds one AsyncStream from a listener's callbacks (called on a background thread).
final class StreamFeed<Element: Sendable>: @unchecked Sendable {
    let continuation: AsyncStream<Element>.Continuation
    init(_ continuation: AsyncStream<Element>.Continuation) { self.continuation = continuation }
}

final class ClientEventStreamListener: ClientListener, @unchecked Sendable {
    private let feed: StreamFeed<ClientEvent>
    init(_ feed: StreamFeed<ClientEvent>) { self.feed = feed }
    func onEvent(event: ClientEvent) { feed.continuation.yield(event) }
}

final class TimelineStreamListener: TimelineListener, @unchecked Sendable {
    private let feed: StreamFeed<[TimelineDiff]>
    init(_ feed: StreamFeed<[TimelineDiff]>) { self.feed = feed }
    func onUpdate(diffs: [TimelineDiff]) { feed.continuation.yield(diffs) }
}

final class RoomListStreamListener: RoomListListener, @unchecked Sendable {
    private let feed: StreamFeed<[RoomListDiff]>
    init(_ feed: StreamFeed<[RoomListDiff]>) { self.feed = feed }
    func onUpdate(diffs: [RoomListDiff]) { feed.continuation.yield(diffs) }
}

/// A stream of what a listener gets while the stream lives: `subscribe` registers the listener
/// made from the stream's feed; the subscription ends when the stream terminates (the consuming
/// task is cancelled or the stream is released). Buffered without bound so the core's listener
/// thread never waits for the consumer.
///
/// The subscription is cancelled off the terminating thread: Swift may run `onTermination`
/// while it holds the cancelled task's lock, which the listener thread's `yield` needs to
/// resume that task, and `cancel` waits for a delivery under way, so called right there both
/// could wait for ever (seen on CI with Swift 6.0.3). A value yielded after termination is
/// dropped by the stream.
private func listenerStream<Element: Sendable>(
    _ subscribe: (StreamFeed<Element>) throws -> Subscription
) rethrows -> AsyncStream<Element> {
    let (stream, continuation) = AsyncStream.makeStream(of: Element.self, bufferingPolicy: .unbounded)
    let subscription = try subscribe(StreamFeed(continuation))
    continuation.onTermination = { _ in DispatchQueue.global().async { subscription.cancel() } }
    return stream
}

/// The values of `upstream` that `pick` maps to non-nil, as a stream that ends with it.
private func mapStream<Upstream: Sendable, T: Sendable>(
    _ upstream: AsyncStream<Upstream>, _ pick: @escaping @Sendable (Upstream) -> T?
) -> AsyncStream<T> {
    let (stream, continuation) = AsyncStream.makeStream(of: T.self, bufferingPolicy: .unbounded)
    let task = Task {
        for await value in upstream {
            if let mapped = pick(value) { continuation.yield(mapped) }
        }
        continuation.finish()
    }
    continuation.onTermination = { _ in task.cancel() }
    return stream
}

/// The state after each update of `upstream`, folded with `step` from `initial`.
private func foldStream<Update: Sendable, State: Sendable>(
    _ upstream: AsyncStream<Update>, _ initial: State, _ step: @escaping @Sendable (inout State, Update) -> Void
) -> AsyncStream<State> {
    let (stream, continuation) = AsyncStream.makeStream(of: State.self, bufferingPolicy: .unbounded)
    let task = Task {
        var state = initial
        for await update in upstream {
            step(&state, update)
            continuation.yield(state)
        }
        continuation.finish()
    }
    continuation.onTermination = { _ in task.cancel() }
    return stream
}

extension ChatClient {
    /// Every `ClientEvent` of this client: the current state first (network, sync, outbox),
    /// then every change. After `shutdown()` the last one is `.syncStateChanged(.stopped)`.
    public func events() throws -> AsyncStream<ClientEvent> {
        try listenerStream { try subscribe(listener: ClientEventStreamListener($0)) }
    }

    /// The network status, current value first.
    public func networkStatusUpdates() throws -> AsyncStream<NetworkStatus> {
        mapStream(try events()) { event in
            if case let .networkStatusChanged(status) = event { return status }
            return nil
        }
    }

    /// The sync engine's state, current value first.
    public func syncStateUpdates() throws -> AsyncStream<SyncState> {
        mapStream(try events()) { event in
            if case let .syncStateChanged(state) = event { return state }
            return nil
        }
    }

    /// Ids of the added, replaced or removed messages of one room, as they change.
    public func messageChanges(roomId: String) throws -> AsyncStream<[String]> {
        mapStream(try events()) { event in
            if case let .messagesChanged(room, ids) = event, room == roomId { return ids }
            return nil
        }
    }
}

extension Timeline {
    /// The timeline's updates as they come: `[.reset]` first, then the diffs of each change.
    public func diffs() throws -> AsyncStream<[TimelineDiff]> {
        try listenerStream { try subscribe(listener: TimelineStreamListener($0)) }
    }

    /// What the timeline shows (oldest first) after each update: the current items first, then
    /// the array again after every change. Render it.
    public func itemsUpdates() throws -> AsyncStream<[ChatMessage]> {
        foldStream(try diffs(), [ChatMessage]()) { items, diffs in items.apply(diffs) }
    }
}

extension RoomList {
    /// The room list's updates as they come: `[.reset]` first, then the diffs of each change.
    public func diffs() throws -> AsyncStream<[RoomListDiff]> {
        try listenerStream { try subscribe(listener: RoomListStreamListener($0)) }
    }

    /// The rooms (most recently active first) after each update, the current ones first.
    public func roomsUpdates() throws -> AsyncStream<[RoomSummary]> {
        foldStream(try diffs(), [RoomSummary]()) { rooms, diffs in rooms.apply(diffs) }
    }
}

extension Array where Element == ChatMessage {
    /// Applies a timeline's diffs in order: afterwards the array equals `Timeline.items()`.
    public mutating func apply(_ diffs: [TimelineDiff]) {
        for d in diffs {
            switch d {
            case let .reset(items): self = items
            case let .pushBack(item): append(item)
            case let .pushFront(item): insert(item, at: 0)
            case let .insert(index, item): insert(item, at: Int(index))
            case let .set(index, item): self[Int(index)] = item
            case let .remove(index): remove(at: Int(index))
            }
        }
    }
}

extension Array where Element == RoomSummary {
    /// Applies the room list's diffs in order: afterwards the array equals `RoomList.rooms()`.
    public mutating func apply(_ diffs: [RoomListDiff]) {
        for d in diffs {
            switch d {
            case let .reset(items): self = items
            case let .pushBack(item): append(item)
            case let .pushFront(item): insert(item, at: 0)
            case let .insert(index, item): insert(item, at: Int(index))
            case let .set(index, item): self[Int(index)] = item
            case let .remove(index): remove(at: Int(index))
            }
        }
    }
}
