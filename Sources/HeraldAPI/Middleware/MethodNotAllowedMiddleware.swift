import HTTPTypes
import Hummingbird
import Synchronization

/// A served path called with a method it does not take is a 405 with `Allow` listing the methods it does (RFC 9110
/// §15.5.6), not the router's 404. Placed after ``AuthMiddleware``: a caller without a key learns nothing about which
/// routes exist.
struct MethodNotAllowedMiddleware: RouterMiddleware {
    typealias Context = HeraldRequestContext
    let routes: RouteTable

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let allowed = routes.methods(for: request.uri.path)
            guard !allowed.isEmpty else { throw error }
            throw APIError(
                .methodNotAllowed, "\(request.method.rawValue) is not allowed on this route; allowed: \(allowed.joined(separator: ", "))",
                headers: [.allow: allowed.joined(separator: ", ")])
        }
    }
}

/// The router's routes as path patterns (a `{parameter}` matches one segment) and their methods, filled once the
/// routes are registered.
final class RouteTable: Sendable {
    private let patterns = Mutex<[(segments: [Substring?], methods: [String])]>([])

    func load(_ routes: [(path: String, method: String)]) {
        var byPath: [String: [String]] = [:]
        for route in routes { byPath[route.path, default: []].append(route.method) }
        let compiled = byPath.map { path, methods in
            (
                segments: path.split(separator: "/").map { $0.hasPrefix("{") || $0.hasPrefix(":") ? nil : $0 },
                methods: Set(methods).sorted()
            )
        }
        patterns.withLock { $0 = compiled }
    }

    /// The methods of the route `path` reaches: like the router, a literal segment beats a parameter at each level
    /// (`/v1/subscribers/bulk` is the bulk route, not a subscriber called "bulk").
    func methods(for path: String) -> [String] {
        let segments = path.split(separator: "/")
        return patterns.withLock { patterns in
            var best: [Bool] = []
            var methods = Set<String>()
            for pattern in patterns where pattern.segments.count == segments.count {
                guard zip(pattern.segments, segments).allSatisfy({ $0.0 == nil || $0.0 == $0.1 }) else { continue }
                let literals = pattern.segments.map { $0 != nil }
                if methods.isEmpty || Self.beats(literals, best) {
                    best = literals
                    methods = Set(pattern.methods)
                } else if literals == best {
                    methods.formUnion(pattern.methods)
                }
            }
            return methods.sorted()
        }
    }

    /// Whether a pattern with literal segments `a` is preferred to one with `b`: at the first level where they differ,
    /// `a` has the literal.
    private static func beats(_ a: [Bool], _ b: [Bool]) -> Bool {
        guard let index = a.indices.first(where: { a[$0] != b[$0] }) else { return false }
        return a[index]
    }
}
