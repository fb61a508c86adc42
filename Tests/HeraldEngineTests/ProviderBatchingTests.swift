import Foundation
import HeraldCore
import Synchronization
import Testing

@testable import HeraldEngine

/// The engine sends a delivery job in the provider's declared batch size, never more batches at once than the
/// provider's declared concurrency, and keeps outcomes in message order.
@Suite("Provider batching")
struct ProviderBatchingTests {
    final class RecordingProvider: DeliveryProvider {
        let providerId = "recording"
        let batchSize = 3
        let concurrency = 2
        let batches = Mutex<[Int]>([])
        let inFlight = Atomic<Int>(0)
        let mostInFlight = Atomic<Int>(0)

        func send(_ batch: [OutboundMessage]) async -> [DeliveryOutcome] {
            let now = inFlight.add(1, ordering: .relaxed).newValue
            var most = mostInFlight.load(ordering: .relaxed)
            while now > most {
                let (exchanged, original) = mostInFlight.compareExchange(expected: most, desired: now, ordering: .relaxed)
                if exchanged { break }
                most = original
            }
            batches.withLock { $0.append(batch.count) }
            try? await Task.sleep(for: .milliseconds(20))
            inFlight.subtract(1, ordering: .relaxed)
            return batch.map { .delivered(providerMessageId: $0.deliveryId) }
        }
    }

    @Test("10 messages to a provider of batch size 3 and concurrency 2")
    func batching() async throws {
        let provider = RecordingProvider()
        let messages = (0..<10).map {
            OutboundMessage(deliveryId: "d\($0)", target: Secret("t\($0)"), content: MessageContent(channel: .push, body: "x"))
        }
        let outcomes = await Engine.send(messages, with: provider, journal: nil)
        #expect(outcomes == (0..<10).map { .delivered(providerMessageId: "d\($0)") })
        #expect(provider.batches.withLock { $0.sorted() } == [1, 3, 3, 3])
        #expect(provider.mostInFlight.load(ordering: .relaxed) == 2)
    }
}
