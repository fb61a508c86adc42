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
                func add(_ target: String, provider: String, integration: Integration?, device: Device?, at: Date? = nil) {
                    guard let integration else {
                        cursor.skipped += 1
                        return
                    }
                    deliveries.append(
                        DeliveryRecord(
                            id: session.newId(), environmentId: environmentId, messageId: nil, deviceId: device?.id,
                            integrationId: integration.id, providerId: provider, target: Secret(target), status: .pending,
                            nextAttemptAt: at, pushId: push.id, platform: device?.platform ?? Self.platform(of: provider), createdAt: now,
                            updatedAt: now))
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
                        let schedule = try await Self.schedule(
                            page.items, personalization: request.personalization, environmentId: environmentId, now: now, session: session)
                        for device in page.items {
                            guard let at = schedule[device.id] else {
                                cursor.skipped += 1  // no timezone without no_tz_send_now, or over a rate limit with drop
                                continue
                            }
                            let candidates = integrations[device.provider] ?? []
                            let integration = device.integrationId.map { id in candidates.first { $0.id == id } } ?? candidates.first
                            add(
                                device.token.revealed, provider: device.provider, integration: integration, device: device,
                                at: at > now ? at : nil)
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
                // One job per integration and send time (a time-window or rate-limit bucket), in chunks.
                let groups = Dictionary(
                    grouping: deliveries, by: { DeliveryBucket(integration: $0.integrationId ?? "", at: $0.nextAttemptAt) })
                for (bucket, group) in groups.sorted(by: {
                    ($0.key.integration, $0.key.at ?? .distantPast) < ($1.key.integration, $1.key.at ?? .distantPast)
                }) {
                    for start in stride(from: 0, to: group.count, by: jobSize) {
                        jobs.append(
                            NewJob(
                                environmentId: environmentId, job: .deliver,
                                payload: DeliverJob(
                                    integration: bucket.integration, deliveries: group[start..<min(start + jobSize, group.count)].map(\.id)
                                ).encoded(), runAt: bucket.at))
                    }
                }
                try await session.enqueue(jobs)
                try await session.updatePush(id: push.id, status: done ? .sent : .sending, cursor: cursor.encoded())
                return done
            }
            if finished { return .done }
        }
    }

    /// When each device of a page gets its push (`limit_strategy`, docs/api.md §Personalisation): now, the next
    /// opening of its time window — computed once per timezone, so devices of one zone share one send time and one
    /// job — and then the first slot its rate-limit key has room in; a device missing from the result is skipped
    /// (no timezone without `no_tz_send_now`, or rate-limited with `drop_if_rate_limited`). Counters are read and
    /// written in the page's transaction.
    static func schedule(
        _ devices: [Device], personalization: PushPersonalization, environmentId: String, now: Date, session: StoreSession
    ) async throws -> [String: Date] {
        var times: [String: Date] = [:]
        var openings: [String: Date] = [:]
        for device in devices {
            guard let window = personalization.timeLimit else {
                times[device.id] = now
                continue
            }
            // One opening per timezone (a bucket): computed for the first device of each zone, shared by the rest.
            let name = device.timezone ?? ""
            if let opening = openings[name] {
                times[device.id] = opening
                continue
            }
            guard !name.isEmpty, let zone = TimeZone(identifier: name) else {
                if window.noTimezoneSendNow { times[device.id] = now }
                continue
            }
            openings[name] = window.nextOpening(after: now, in: zone)
            times[device.id] = openings[name]
        }
        guard let limit = personalization.rateLimit, !times.isEmpty else { return times }
        let keys = Dictionary(
            devices.map { ($0.id, PushRenderer.rateLimitKey(limit, device: $0)) }, uniquingKeysWith: { first, _ in first })
        let intervals = limit.policies.map(\.intervalMilliseconds)
        let longest = intervals.max() ?? 0
        let nowMs = now.millisecondsSince1970
        var stored = try await session.pushRateCounts(
            environmentId: environmentId, keys: Array(Set(keys.values)), intervals: Array(Set(intervals)), since: nowMs - longest)
        var added: [String: [Int64: [Int64: Int]]] = [:]
        for device in devices.sorted(by: { $0.id < $1.id }) {
            guard let at = times[device.id], let key = keys[device.id] else { continue }
            let counts = limit.policies.map { stored[key]?[$0.intervalMilliseconds] ?? [:] }
            guard let slot = limit.slot(now: max(nowMs, at.millisecondsSince1970), counts: counts) else {
                times[device.id] = nil
                continue
            }
            for policy in limit.policies {
                let window = slot - slot % policy.intervalMilliseconds
                stored[key, default: [:]][policy.intervalMilliseconds, default: [:]][window, default: 0] += 1
                added[key, default: [:]][policy.intervalMilliseconds, default: [:]][window, default: 0] += 1
            }
            times[device.id] = Date(millisecondsSince1970: slot)
        }
        var increments: [(key: String, interval: Int64, window: Int64, count: Int)] = []
        for (key, intervals) in added.sorted(by: { $0.key < $1.key }) {
            for (interval, windows) in intervals.sorted(by: { $0.key < $1.key }) {
                for (window, count) in windows.sorted(by: { $0.key < $1.key }) { increments.append((key, interval, window, count)) }
            }
        }
        try await session.addPushRateCounts(environmentId: environmentId, increments)
        return times
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

/// The deliveries of one raw-send page that go in the same jobs: one integration, one send time.
struct DeliveryBucket: Hashable {
    var integration: String
    var at: Date?
}
