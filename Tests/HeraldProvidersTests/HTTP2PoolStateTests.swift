import Testing

@testable import HeraldProviders

/// The HTTP/2 pool's choice of connection, driven directly: fake connections, no sockets.
@Suite("HTTP/2 pool state")
struct HTTP2PoolStateTests {
    final class FakeConnection: CustomStringConvertible {
        let name: String
        var inflight: Int
        var usable = true
        init(_ name: String, inflight: Int = 0) {
            self.name = name
            self.inflight = inflight
        }
        var description: String { name }
    }

    typealias State = HTTP2PoolState<FakeConnection, Int>

    /// Chooses with the fakes' own counters; openings are numbered from `next`.
    static func choose(_ state: inout State, next: inout Int) -> (State.Choice, opened: Int?) {
        var opened: Int?
        let choice = state.choose(usable: \.usable, inflight: \.inflight) {
            next += 1
            opened = next
            return next
        }
        return (choice, opened)
    }

    static func connection(_ choice: State.Choice) -> FakeConnection? {
        if case .ready(let connection) = choice { return connection }
        return nil
    }

    static func pending(_ choice: State.Choice) -> Int? {
        if case .wait(let pending) = choice { return pending }
        return nil
    }

    @Test("the first batch opens one connection and waits; others wait for the same one until HTTP/2 is known")
    func firstConnection() {
        var state = State(maximumConnections: 4, streamsPerConnection: 100)
        var next = 0
        let (first, opened) = Self.choose(&state, next: &next)
        #expect(Self.pending(first) == 1 && opened == 1)
        let (second, openedAgain) = Self.choose(&state, next: &next)
        #expect(Self.pending(second) == 1, "a second batch waits for the same opening")
        #expect(openedAgain == nil, "no second connection before the origin said it speaks HTTP/2")
        let a = FakeConnection("a")
        #expect(state.opened(1, .http2(a), same: ==) == nil)
        #expect(Self.connection(Self.choose(&state, next: &next).0) === a)
        #expect(state.connecting.isEmpty)
    }

    @Test("the least busy connection is chosen; a busy pool opens another beside it, up to the maximum")
    func leastBusyAndGrowth() {
        var state = State(maximumConnections: 2, streamsPerConnection: 100)
        var next = 0
        _ = Self.choose(&state, next: &next)
        let a = FakeConnection("a", inflight: 100)
        _ = state.opened(1, .http2(a), same: ==)
        // a is full: it is still used, and a second one opens beside it.
        let (busy, opened) = Self.choose(&state, next: &next)
        #expect(Self.connection(busy) === a)
        #expect(opened == 2)
        let b = FakeConnection("b", inflight: 3)
        _ = state.opened(2, .http2(b), same: ==)
        #expect(Self.connection(Self.choose(&state, next: &next).0) === b)
        // Both full, at the maximum: the least busy is used, nothing more opens.
        b.inflight = 150
        let (full, none) = Self.choose(&state, next: &next)
        #expect(Self.connection(full) === a)
        #expect(none == nil)
        #expect(state.connections.count == 2)
    }

    @Test("unusable connections (closed, GOAWAY) are dropped; a failed opening leaves room for another")
    func unusableAndFailures() {
        var state = State(maximumConnections: 1, streamsPerConnection: 100)
        var next = 0
        _ = Self.choose(&state, next: &next)
        let a = FakeConnection("a")
        _ = state.opened(1, .http2(a), same: ==)
        a.usable = false
        let (choice, opened) = Self.choose(&state, next: &next)
        #expect(Self.pending(choice) == 2 && opened == 2)
        #expect(state.connections.isEmpty)
        _ = state.opened(2, .failed, same: ==)
        #expect(state.connecting.isEmpty)
        #expect(Self.pending(Self.choose(&state, next: &next).0) == 3)
    }

    @Test("an origin without h2 is refused from then on; a shut pool refuses and closes late connections")
    func refusals() {
        var state = State(maximumConnections: 4, streamsPerConnection: 100)
        var next = 0
        _ = Self.choose(&state, next: &next)
        _ = state.opened(1, .notHTTP2, same: ==)
        guard case .refused(let error) = Self.choose(&state, next: &next).0 else {
            Issue.record("expected a refusal")
            return
        }
        #expect(error.kind == .notHTTP2)

        var open = State(maximumConnections: 4, streamsPerConnection: 100)
        _ = Self.choose(&open, next: &next)
        let a = FakeConnection("a")
        _ = open.opened(next, .http2(a), same: ==)
        let (late, _) = Self.choose(&open, next: &next)
        #expect(Self.connection(late) === a)
        #expect(open.close().map(\.name) == ["a"])
        guard case .refused(let closed) = Self.choose(&open, next: &next).0 else {
            Issue.record("expected a refusal")
            return
        }
        #expect(closed.kind == .connectionClosed)
        let straggler = FakeConnection("late")
        #expect(open.opened(99, .http2(straggler), same: ==) === straggler)
    }
}
