import Foundation
import HeraldCore
import HeraldStore

extension Engine {
    /// Fans a raw send out: one delivery per device (or raw token, or native topic), grouped into `deliver` jobs per
    /// integration. Device recipients are read in keyset pages; each page commits its deliveries, their jobs and the
    /// cursor together, so a crash repeats no page and memory does not grow with the audience. A send cancelled or
    /// expired meanwhile stops at the next page.
    func sendPush(_ job: PushJob, environmentId: String) async throws -> JobResult {
        let started = ContinuousClock.now
        guard let push = try await store.read({ try await $0.pushes(ids: [job.push])[job.push] }),
            push.status == .queued || push.status == .sending
        else { return .done }
        let request = try PushSendRequest(json: push.request)
        let pageSize = max(1, configuration.pushPageSize)
        let jobSize = max(1, configuration.deliveryJobSize)
        // Read (and decrypted) once per claim, not per page; a change takes effect at the next claim.
        let integrations = try await store.read { try await Self.pushIntegrations(environmentId: environmentId, session: $0) }
        while true {
            if ContinuousClock.now - started > configuration.expansionTimeSlice { return .again(at: store.clock.now()) }
            let finished = try await store.transaction(durability: .replayable) { session -> Bool in
                guard let fresh = try await session.pushes(ids: [push.id], lock: true)[push.id],
                    fresh.status == .queued || fresh.status == .sending
                else { return true }
                if let expireAt = fresh.expireAt, expireAt <= session.now {
                    try await session.updatePush(id: push.id, status: .expired, cursor: fresh.cursor)
                    return true
                }
                var cursor = PushCursor.decode(fresh.cursor)
                let now = session.now
                var deliveries: [DeliveryRecord] = []
                func add(_ target: String, provider: String, integration: Integration?, device: Device?) {
                    guard let integration else {
                        cursor.skipped += 1
                        return
                    }
                    deliveries.append(
                        DeliveryRecord(
                            id: session.newId(), environmentId: environmentId, messageId: nil, deviceId: device?.id,
                            integrationId: integration.id, providerId: provider, target: Secret(target), status: .pending,
                            pushId: push.id, platform: device?.platform ?? Self.platform(of: provider), createdAt: now, updatedAt: now))
                }
                var done = true
                switch request.recipient {
                case .devices(let ids, let users, let topics, let providers, let platforms):
                    // Only devices of a provider the send has a payload for.
                    let wanted = providers.isEmpty ? Array(request.payloads.keys) : providers.filter { request.payloads[$0] != nil }
                    if !wanted.isEmpty {
                        let filter = DeviceFilter(ids: ids, users: users, topics: topics, providers: wanted.sorted(), platforms: platforms)
                        let page = try await session.devicePage(
                            environmentId: environmentId, filter: filter, after: cursor.after, limit: pageSize)
                        for device in page.items {
                            let candidates = integrations[device.provider] ?? []
                            let integration = device.integrationId.map { id in candidates.first { $0.id == id } } ?? candidates.first
                            add(device.token.revealed, provider: device.provider, integration: integration, device: device)
                        }
                        cursor.after = page.nextCursor ?? cursor.after
                        done = page.nextCursor == nil
                    }
                case .tokens(let provider, let tokens):
                    for token in tokens { add(token, provider: provider, integration: integrations[provider]?.first, device: nil) }
                case .nativeTopic(let provider, let target), .nativeCondition(let provider, let target):
                    add(target, provider: provider, integration: integrations[provider]?.first, device: nil)
                }
                try await session.insertDeliveries(deliveries)
                var jobs: [NewJob] = []
                for (integrationId, group) in Dictionary(grouping: deliveries, by: { $0.integrationId ?? "" }).sorted(by: {
                    $0.key < $1.key
                }) {
                    for start in stride(from: 0, to: group.count, by: jobSize) {
                        jobs.append(
                            NewJob(
                                environmentId: environmentId, job: .deliver,
                                payload: DeliverJob(
                                    integration: integrationId, deliveries: group[start..<min(start + jobSize, group.count)].map(\.id)
                                ).encoded()))
                    }
                }
                try await session.enqueue(jobs)
                try await session.updatePush(id: push.id, status: done ? .sent : .sending, cursor: cursor.encoded())
                return done
            }
            if finished { return .done }
        }
    }

    /// The active integrations that can take raw payloads, by provider: the primary first, then the oldest.
    static func pushIntegrations(environmentId: String, session: StoreSession) async throws -> [String: [Integration]] {
        let raw = Set(PushSendRequest.providers.map(\.herald))
        let all = try await session.integrations(environmentId: environmentId, channel: .push, activeOnly: true)
            .filter { raw.contains($0.providerId) }
            .sorted { ($0.primary ? 0 : 1, $0.id) < ($1.primary ? 0 : 1, $1.id) }
        return Dictionary(grouping: all, by: \.providerId)
    }

    /// The platform a raw token implies (FCM serves every platform, so it implies none).
    static func platform(of provider: String) -> String? { ProviderCatalog.spec(provider)?.platform }
}
