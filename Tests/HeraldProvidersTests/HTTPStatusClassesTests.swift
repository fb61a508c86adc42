import HeraldCore
import HeraldProviders
import Testing

/// The shared status classifier: what the providers agree on, and each field's exceptions.
@Suite("HTTP status classes")
struct HTTPStatusClassesTests {
    static let rows: [(HTTPStatusClasses, Int, String)] = [
        (.webhook, 404, "invalidToken"), (.webhook, 410, "invalidToken"), (.webhook, 401, "authConfig"), (.webhook, 403, "authConfig"),
        (.webhook, 408, "retryLater"), (.webhook, 425, "retryLater"), (.webhook, 429, "retryLater"), (.webhook, 503, "retryLater"),
        (.webhook, 400, "badRequest"), (.webhook, 413, "badRequest"),
        (HTTPStatusClasses(), 404, "badRequest"), (HTTPStatusClasses(), 408, "badRequest"), (HTTPStatusClasses(), 500, "retryLater"),
        (HTTPStatusClasses(auth: [401, 402, 403, 404]), 402, "authConfig"),
        (HTTPStatusClasses(auth: [401, 402, 403, 404]), 404, "authConfig"),
    ]

    @Test("each status lands in its class", arguments: rows.indices)
    func classes(_ index: Int) {
        let (classes, status, expected) = Self.rows[index]
        #expect(classes.outcome(status: status, reason: "x", retryAfter: nil).label == expected, "\(status)")
    }

    @Test("a retry keeps Retry-After; a bad request carries the answer's text")
    func details() {
        #expect(
            HTTPStatusClasses.webhook.outcome(status: 429, reason: "slow", retryAfter: .seconds(7))
                == .retryLater(reason: "slow", after: .seconds(7)))
        #expect(
            HTTPStatusClasses.webhook.outcome(status: 400, reason: "HTTP 400", detail: "bad field", retryAfter: nil)
                == .badRequest(reason: "HTTP 400: bad field"))
    }
}
