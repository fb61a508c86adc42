import Foundation
import HeraldCore
import HeraldStore
import HeraldWorkflow

extension RunBatch {
    /// Plans a channel step: selects integrations and targets, renders, records messages and deliveries, queues
    /// delivery jobs. Returns a skip reason (and what the trail should record with it) when there is nothing to send to.
    mutating func send(
        _ stepId: String, run: WorkflowRun, notificationId: String
    ) async throws -> (reason: String, raw: [String: JSONValue]?)? {
        guard let notification = notifications[notificationId], let event = eventRecords[notification.eventId],
            let step = run.workflow.step(stepId), let channel = step.type.channel, let options = step.action.channelOptions
        else { return ("unknown_step", nil) }
        var candidates = try await integrations(channel)
        if let allowed = options.integrations { candidates = candidates.filter { allowed.contains($0.identifier) } }
        let subscriberChannels = channels[notification.subscriberId] ?? RecipientChannels()
        let profile = subscribers[notification.subscriberId]?.profile
        var evaluationContext = run.evaluationContext
        let unsubscribeURL = channel == .email ? try await unsubscribeURL(run.workflow, subscriberId: notification.subscriberId) : nil
        if case .object(var object) = evaluationContext {
            if let unsubscribeURL { object["unsubscribeUrl"] = .string(unsubscribeURL) }
            // `{{t.<key>}}`: the workflow's translations for the subscriber's locale (docs/workflows.md §Translations).
            if !run.workflow.translations.isEmpty {
                object["t"] = run.workflow.translationContext(locale: profile?.locale)
            }
            evaluationContext = .object(object)
        }
        var base = StepRenderer.render(step, context: evaluationContext)
        if let unsubscribeURL {
            // RFC 8058 one-click unsubscribe (README §Preferences): providers add both fields before they sign.
            base.headers = ["List-Unsubscribe": "<\(unsubscribeURL)>", "List-Unsubscribe-Post": "List-Unsubscribe=One-Click"]
        }

        // The provider overrides of each candidate, merged once (push targets may come from them).
        func overrides(_ integration: Integration) -> JSONValue {
            Overrides.merged(
                step: options.overrides[integration.providerId].map { Template.renderStrings(in: $0, context: run.evaluationContext) },
                trigger: event.overrides, stepId: stepId,
                providerId: integration.providerId)
        }
        var plans: [(Integration, [StepTargets.Target], overrides: JSONValue)] = []
        switch channel {
        case .push:
            for integration in candidates {
                let merged = overrides(integration)
                let targets = StepTargets.push(integration: integration, overrides: merged, devices: subscriberChannels.devices)
                if !targets.isEmpty { plans.append((integration, targets, merged)) }
            }
            if plans.isEmpty { return (candidates.isEmpty ? "no_active_integration" : "missing_push_token", nil) }
        case .chat:
            for integration in candidates {
                if let target = StepTargets.chat(integration: integration, credentials: subscriberChannels.credentials[integration.id]) {
                    plans.append((integration, [target], overrides(integration)))
                }
            }
            if plans.isEmpty { return (candidates.isEmpty ? "no_active_integration" : "missing_webhook_url", nil) }
        case .email, .sms:
            let address = channel == .email ? profile?.email : profile?.phone
            guard let address, !address.isEmpty else { return (channel == .email ? "missing_email" : "missing_phone", nil) }
            guard let primary = candidates.first else { return ("no_active_integration", nil) }
            if let entry = try await suppression(channel, address: address, subscriberId: notification.subscriberId) {
                // A provider refused this address for good: skipped before any provider sees it (docs/webhooks.md).
                return (
                    StepState.suppressed,
                    [
                        "address": .string(entry.address), "reason": .string(entry.reason),
                        "since": .string(entry.createdAt.iso8601Milliseconds),
                    ]
                )
            }
            plans.append((primary, [(address, nil, nil)], overrides(primary)))
        default:
            return ("unsupported_channel", nil)
        }

        for (integration, targets, merged) in plans {
            var content = base
            content.overrides = merged
            content.context = [
                "payload": event.payload, "subscriber": run.context["subscriber"] ?? .null,
                "step": ["id": .string(stepId), "type": .string(step.type.rawValue)], "transactionId": .string(event.transactionId),
            ]
            addMessage(notification: notification, stepId: stepId, integration: integration, content: content, targets: targets)
        }
        var channelsUsed = notifications[notificationId]?.channels ?? []
        if !channelsUsed.contains(channel.rawValue) { channelsUsed.append(channel.rawValue) }
        notifications[notificationId]?.channels = channelsUsed
        return nil
    }

    /// The suppression entry of a recipient's address, if any. The first email or SMS step of a batch checks the
    /// addresses of every recipient loaded so far in one query per channel; later recipients join the next check.
    mutating func suppression(_ channel: Channel, address: String, subscriberId: String) async throws -> Suppression? {
        if !suppressionChecked.contains(subscriberId) {
            let unchecked = subscribers.filter { !suppressionChecked.contains($0.key) }
            suppressionChecked.formUnion(unchecked.keys)
            suppressionChecked.insert(subscriberId)
            for checked in [Channel.email, .sms] {
                var addresses = unchecked.values.compactMap { checked == .email ? $0.profile.email : $0.profile.phone }
                if checked == channel { addresses.append(address) }
                guard !addresses.isEmpty else { continue }
                let found = try await session.suppressions(environmentId: environmentId, channel: checked, addresses: addresses)
                suppressed[checked, default: [:]].merge(found) { first, _ in first }
            }
        }
        return suppressed[channel]?[Suppression.normalised(address, channel: channel)]
    }

    /// The one-click unsubscribe URL of a workflow's email for a subscriber: only for workflows subscribers may change,
    /// and only when Herald knows its public URL.
    func unsubscribeURL(_ workflow: Workflow, subscriberId: String) async throws -> String? {
        guard workflow.subscriberEditable, let base = engine.configuration.publicURL,
            let key = try await engine.unsubscribeKeys.key(environmentId, session: session)
        else { return nil }
        let token = try UnsubscribeToken(environmentId: environmentId, subscriberId: subscriberId, workflowId: workflow.id, channel: .email)
            .sealed(key: key)
        return base + "/v1/unsubscribe/" + token
    }

    /// Records a message for one integration with a delivery per target, and queues the delivery jobs.
    mutating func addMessage(
        notification: NotificationRecord, stepId: String, integration: Integration, content: MessageContent,
        targets: [StepTargets.Target]
    ) {
        let message = MessageRecord(
            id: session.newId(), environmentId: environmentId, notificationId: notification.id, transactionId: notification.transactionId,
            workflowId: notification.workflowId, subscriberId: notification.subscriberId, stepId: stepId, channel: content.channel,
            integrationId: integration.id, providerId: integration.providerId, status: .pending, content: content,
            deviceTokens: targets.map(\.target), createdAt: now, updatedAt: now)
        messageIndex[message.id] = messages.count
        messages.append(message)
        details.append(
            detail(
                notification.id, stepId: stepId, status: .pending, "message_created", messageId: message.id,
                providerId: integration.providerId))
        let planned = targets.map { target in
            DeliveryRecord(
                id: SentJournal.deliveryId(
                    notification: notification.id, step: stepId, integration: integration.id, target: target.target),
                environmentId: environmentId, messageId: message.id, deviceId: target.deviceId,
                integrationId: integration.id, providerId: integration.providerId, target: Secret(target.target), status: .pending,
                platform: target.platform, createdAt: now, updatedAt: now)
        }
        for delivery in planned {
            deliveryIndex[delivery.id] = deliveries.count
            deliveries.append(delivery)
        }
        // Deliveries are batched per integration and transaction across the whole batch of runs, so a topic page
        // becomes a few provider batches rather than one job per subscriber.
        outbound[[integration.id, integration.providerId, notification.transactionId], default: []] += planned.map(\.id)
    }

    mutating func deliveryJobs() -> [NewJob] {
        var result: [NewJob] = []
        for (key, ids) in outbound.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            let batchSize = max(1, engine.configuration.deliveryJobSize)
            for start in stride(from: 0, to: ids.count, by: batchSize) {
                result.append(
                    NewJob(
                        environmentId: environmentId, job: .deliver,
                        payload: DeliverJob(integration: key[0], deliveries: Array(ids[start..<min(start + batchSize, ids.count)]))
                            .encoded(),
                        transactionId: key[2]))
            }
        }
        outbound.removeAll()
        return result
    }

    // MARK: Records

    func detail(
        _ notificationId: String?, stepId: String?, status: ExecutionDetail.Status, _ code: String, messageId: String? = nil,
        deliveryId: String? = nil, providerId: String? = nil, source: ExecutionDetail.Source = .internal, isRetry: Bool = false,
        raw: [String: JSONValue]? = nil
    ) -> ExecutionDetail {
        ExecutionDetail(
            id: session.newId(), environmentId: environmentId, notificationId: notificationId, messageId: messageId, deliveryId: deliveryId,
            stepId: stepId, providerId: providerId, status: status, detail: code, source: source, isRetry: isRetry,
            raw: raw.map { JSONValue.object($0).jsonString() }, createdAt: now)
    }

    mutating func record(_ extra: [ExecutionDetail]) { details += extra }
    mutating func enqueue(_ extra: [NewJob]) { jobs += extra.map { (nil, $0) } }
}
