/// The bookkeeping of an ``HTTP2Pool`` — which connection a batch takes and when another is opened — as a value with
/// no I/O, generic over the connection and the handle of a connection being opened so that it is tested on its own.
///
/// A batch takes the usable connection with the fewest streams in flight. While even that one carries
/// `streamsPerConnection` or more, one more is opened beside it, up to `maximumConnections` open or opening. Until the
/// first connection tells whether the origin speaks HTTP/2, only one is opened; an origin that does not is refused
/// from then on (its requests go over HTTP/1.1).
struct HTTP2PoolState<Connection: AnyObject, Pending> {
    enum Negotiated: Sendable { case unknown, http2, other }

    /// What a batch does.
    enum Choice {
        /// Send on this connection.
        case ready(Connection)
        /// Wait for this connection to open.
        case wait(Pending)
        /// Nothing to send on: the pool is shut down, or the origin does not speak HTTP/2.
        case refused(HTTP2ClientError)
    }

    /// How an opening ended.
    enum Opened {
        case http2(Connection)
        case notHTTP2
        case failed
    }

    let maximumConnections: Int
    let streamsPerConnection: Int
    private(set) var connections: [Connection] = []
    private(set) var connecting: [Pending] = []
    private(set) var negotiated: Negotiated = .unknown
    private(set) var closed = false

    init(maximumConnections: Int, streamsPerConnection: Int) {
        self.maximumConnections = max(1, maximumConnections)
        self.streamsPerConnection = streamsPerConnection
    }

    /// Chooses for one batch; `open` is called (at most once) when a connection must be opened, and returns the handle
    /// the caller will complete through ``opened(_:_:same:)``.
    mutating func choose(usable: (Connection) -> Bool, inflight: (Connection) -> Int, open: () -> Pending) -> Choice {
        guard !closed else { return .refused(HTTP2ClientError(.connectionClosed, "transport shut down")) }
        guard negotiated != .other else { return .refused(HTTP2ClientError(.notHTTP2)) }
        connections.removeAll { !usable($0) }
        let best = connections.min { inflight($0) < inflight($1) }
        if let best, inflight(best) < streamsPerConnection { return .ready(best) }
        let room = connections.count + connecting.count < maximumConnections && (negotiated == .http2 || connecting.isEmpty)
        var opening: Pending?
        if room {
            let pending = open()
            connecting.append(pending)
            opening = pending
        }
        if let best { return .ready(best) }
        // Room or not, something is opening here: either the one just started or an earlier one.
        return .wait(opening ?? connecting[0])
    }

    /// Records how an opening ended; returns a connection to close (it opened after the pool shut down).
    mutating func opened(_ pending: Pending, _ outcome: Opened, same: (Pending, Pending) -> Bool) -> Connection? {
        connecting.removeAll { same($0, pending) }
        switch outcome {
        case .http2(let connection):
            negotiated = .http2
            if closed { return connection }
            connections.append(connection)
        case .notHTTP2:
            negotiated = .other
        case .failed:
            break
        }
        return nil
    }

    /// Forgets a connection that closed.
    mutating func remove(_ connection: Connection) {
        connections.removeAll { $0 === connection }
    }

    /// Shuts the pool: no batch is accepted any more. Returns the connections to close.
    mutating func close() -> [Connection] {
        closed = true
        defer { connections = [] }
        return connections
    }
}

extension HTTP2PoolState: Sendable where Connection: Sendable, Pending: Sendable {}
extension HTTP2PoolState.Choice: Sendable where Connection: Sendable, Pending: Sendable {}
extension HTTP2PoolState.Opened: Sendable where Connection: Sendable {}
