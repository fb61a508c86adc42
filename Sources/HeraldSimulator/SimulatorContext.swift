import Hummingbird
import NIOCore

/// The request context of the simulator's routes: the connection a request came on (APNs counts provider-token
/// changes per connection; fault programs can reset it) and whether it arrived over HTTP/2.
public struct SimulatorContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The TCP connection (for HTTP/2: the parent of the stream channel).
    public let connection: any Channel
    public let isHTTP2: Bool

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        connection = source.channel.parent ?? source.channel
        isHTTP2 = source.channel.parent != nil
    }

    public var connectionId: ObjectIdentifier { ObjectIdentifier(connection) }
}
