import HeraldCore
import Testing

@testable import HeraldEngine

/// A run planned again after a crash must plan the same delivery ids, or the sent journal could not tell what its
/// first attempt sent (docs/reliability.md §Crashes).
@Suite("Sent journal: planned delivery ids")
struct SentJournalIdentityTests {
    @Test("the id depends on notification, step, integration and target only, and keeps the id shape")
    func derivedIds() {
        let notification = "6b12a618c93244f854078ba1"
        let id = SentJournal.deliveryId(notification: notification, step: "push", integration: "i1", target: "token-1")
        #expect(id == SentJournal.deliveryId(notification: notification, step: "push", integration: "i1", target: "token-1"))
        #expect(ObjectIDGenerator.isValid(id))
        #expect(id.hasPrefix("6b12a618"), "the notification's time prefix keeps ids roughly in creation order")
        #expect(!id.contains("token"), "the target enters only through the digest")
        let others = [
            SentJournal.deliveryId(notification: "6b12a618c93244f854078ba2", step: "push", integration: "i1", target: "token-1"),
            SentJournal.deliveryId(notification: notification, step: "push2", integration: "i1", target: "token-1"),
            SentJournal.deliveryId(notification: notification, step: "push", integration: "i2", target: "token-1"),
            SentJournal.deliveryId(notification: notification, step: "push", integration: "i1", target: "token-2"),
            // Field boundaries are separated: moving a character between fields changes the id.
            SentJournal.deliveryId(notification: notification, step: "pus", integration: "hi1", target: "token-1"),
        ]
        #expect(Set(others + [id]).count == others.count + 1)
    }
}
