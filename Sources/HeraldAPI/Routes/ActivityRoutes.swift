import Foundation
import HeraldCore
import HeraldStore
import HeraldWorkflow
import Hummingbird

/// The activity trail in Novu's shapes (`docs/wire-compatibility.md` §Novu activity): messages and notifications with their
/// jobs (one per step) and execution details, so that `novu-py` parses them.
struct ActivityRoutes {
    let store: SQLStore
    let workflows: WorkflowRegistry

    /// Provider ids of Novu's `ProvidersIdEnum` that Herald uses; strict enum in the SDK (`jobs[].providerId`).
    static let novuProviderIds: Set<String> = Set(
        ProviderCatalog.specs.filter(\.novuKnown).map(\.id) + ["novu"])

    func register(on group: RouterGroup<HeraldRequestContext>) {
        group.get("/v1/messages") { request, context in
            let environment = try context.requireEnvironment()
            let query = NovuQuery(request)
            var filter = MessageFilter()
            if let channel = query.string("channel") {
                guard let value = Channel(rawValue: channel) else {
                    throw APIError.invalidField("channel", "channel must be one of in_app, email, sms, chat, push")
                }
                filter.channel = value
            }
            filter.subscriberId = query.string("subscriberId")
            filter.transactionIds = query.strings("transactionId")
            let page = try query.integer("page", default: 0, range: 0...100_000)
            let limit = try query.integer("limit", default: 10, range: 1...1000)
            let messageFilter = filter
            let messages = try await store.read { session in
                try await session.listMessages(environmentId: environment.id, filter: messageFilter, page: page, limit: limit + 1)
            }
            return JSONResponse.make([
                "data": .array(messages.prefix(limit).map(Self.messageJSON)), "hasMore": .bool(messages.count > limit),
                "pageSize": .number(Double(limit)), "page": .number(Double(page)),
            ])
        }
        group.delete("/v1/messages/transaction/:transactionId") { request, context in
            let environment = try context.requireEnvironment()
            let transactionId = try context.parameters.require("transactionId")
            let channel = try NovuQuery(request).string("channel").map { name -> Channel in
                guard let channel = Channel(rawValue: name) else { throw APIError.invalidField("channel", "unknown channel \(name)") }
                return channel
            }
            let deleted = try await store.transaction { session in
                try await session.deleteMessages(environmentId: environment.id, transactionId: transactionId, channel: channel)
            }
            guard deleted > 0 else { throw APIError(.notFound, "No messages found for transaction \(transactionId)") }
            return Response(status: .noContent)
        }
        group.delete("/v1/messages/:messageId") { _, context in
            let environment = try context.requireEnvironment()
            let id = try context.parameters.require("messageId")
            let deleted = try await store.transaction { try await $0.deleteMessage(environmentId: environment.id, id: id) }
            guard deleted else { throw APIError(.notFound, "Message \(id) not found") }
            return JSONResponse.data(["acknowledged": true, "status": "deleted"])
        }
        group.get("/v1/notifications") { request, context in
            let environment = try context.requireEnvironment()
            let query = NovuQuery(request)
            var filter = NotificationFilter()
            filter.workflowIds = query.strings("templates")
            filter.subscriberIds = query.strings("subscriberIds")
            filter.transactionId = query.string("transactionId")
            filter.topicKey = query.string("topicKey")
            filter.channels = query.strings("channels")
            filter.after = query.string("after").flatMap(Self.parseDate)
            filter.before = query.string("before").flatMap(Self.parseDate)
            let page = try query.integer("page", default: 0, range: 0...100_000)
            let limit = try query.integer("limit", default: 10, range: 1...100)
            let workflows = self.workflows
            let notificationFilter = filter
            let items = try await store.read { session -> [JSONValue] in
                let notifications = try await session.listNotifications(
                    environmentId: environment.id, filter: notificationFilter, page: page, limit: limit + 1)
                return try await Self.activityJSON(Array(notifications.prefix(limit + 1)), session: session, workflows: workflows)
            }
            return JSONResponse.make([
                "data": .array(Array(items.prefix(limit))), "hasMore": .bool(items.count > limit), "pageSize": .number(Double(limit)),
                "page": .number(Double(page)),
            ])
        }
        group.get("/v1/notifications/:notificationId") { _, context in
            let environment = try context.requireEnvironment()
            let id = try context.parameters.require("notificationId")
            let workflows = self.workflows
            let item = try await store.read { session -> JSONValue? in
                guard let notification = try await session.notification(environmentId: environment.id, id: id) else { return nil }
                return try await Self.activityJSON([notification], session: session, workflows: workflows).first
            }
            guard let item else { throw APIError(.notFound, "Notification \(id) not found") }
            return JSONResponse.data(item)
        }
    }

    static func parseDate(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        if let date = formatter.date(from: text) { return date }
        formatter.formatOptions = [.withFullDate]
        return formatter.date(from: text)
    }

    static func messageJSON(_ message: MessageRecord) -> JSONValue {
        var object: [String: JSONValue] = [
            "_id": .string(message.id), "_environmentId": .string(message.environmentId), "_organizationId": .string(novuOrganizationId),
            "_notificationId": .string(message.notificationId), "_subscriberId": .string(message.subscriberId),
            "_templateId": .string(message.workflowId), "templateIdentifier": .string(message.workflowId),
            "createdAt": .string(message.createdAt.iso8601Milliseconds), "updatedAt": .string(message.updatedAt.iso8601Milliseconds),
            "transactionId": .string(message.transactionId), "channel": .string(message.channel.rawValue), "read": false, "seen": false,
            "cta": .object([:]), "status": .string(message.status == .pending ? "sent" : message.status.rawValue),
            "content": .string(message.content.body),
            "stepId": .string(message.stepId), "deliveryStatus": .string(message.status.rawValue),
        ]
        if let providerId = message.providerId { object["providerId"] = .string(providerId) }
        if let integrationId = message.integrationId { object["_integrationId"] = .string(integrationId) }
        switch message.channel {
        case .push:
            object["deviceTokens"] = .array(message.deviceTokens.map(JSONValue.string))
            object["title"] = message.content.title.map(JSONValue.string) ?? .null
            object["payload"] = .object(message.content.data.mapValues(JSONValue.string))
        case .email:
            object["subject"] = message.content.title.map(JSONValue.string) ?? .null
            object["email"] = message.deviceTokens.first.map(JSONValue.string) ?? .null
        case .sms:
            object["phone"] = message.deviceTokens.first.map(JSONValue.string) ?? .null
        case .chat:
            object["directWebhookUrl"] = message.deviceTokens.first.map(JSONValue.string) ?? .null
        default: break
        }
        if let errorId = message.errorId { object["errorId"] = .string(errorId) }
        if let errorText = message.errorText { object["errorText"] = .string(errorText) }
        return .object(object)
    }

    /// Novu's `ActivityNotificationResponseDto` for notifications, with messages and details loaded in two queries.
    static func activityJSON(
        _ notifications: [NotificationRecord], session: StoreSession, workflows: WorkflowRegistry
    ) async throws -> [JSONValue] {
        let ids = notifications.map(\.id)
        let messages = Dictionary(grouping: try await session.messages(notificationIds: ids), by: \.notificationId)
        let details = Dictionary(grouping: try await session.executionDetails(notificationIds: ids), by: { $0.notificationId ?? "" })
        let subscribers = try await session.subscribers(
            environmentId: notifications.first?.environmentId ?? "", subscriberIds: Array(Set(notifications.map(\.subscriberId))))
        var events: [String: EventRecord] = [:]
        for eventId in Set(notifications.map(\.eventId)) { events[eventId] = try await session.event(id: eventId) }
        return notifications.map { notification in
            let workflow = workflows.workflow(notification.workflowId)
            let state = RunState(stored: notification.state)
            let stepMessages = Dictionary(grouping: messages[notification.id] ?? [], by: \.stepId)
            let stepDetails = Dictionary(grouping: details[notification.id] ?? [], by: { $0.stepId ?? "" })
            let stepIds = workflow?.steps.map(\.id) ?? Array(state.steps.keys).sorted()
            let jobs: [JSONValue] = stepIds.map { stepId in
                let type = workflow?.step(stepId)?.type.rawValue ?? stepMessages[stepId]?.first?.channel.rawValue ?? "custom"
                let provider = stepMessages[stepId]?.first?.providerId
                let stepState = state.steps[stepId]
                var job: [String: JSONValue] = [
                    "_id": .string("\(notification.id):\(stepId)"), "type": .string(type),
                    "providerId": .string(provider.flatMap { novuProviderIds.contains($0) ? $0 : nil } ?? "novu"),
                    "status": .string(jobStatus(stepState, notification: notification)),
                    "step": ["_id": .string(stepId), "active": true, "filters": [], "_templateId": .string(notification.workflowId)],
                    "executionDetails": .array((stepDetails[stepId] ?? []).map(detailJSON)),
                    "updatedAt": .string(notification.updatedAt.iso8601Milliseconds),
                    "stepId": .string(stepId),
                ]
                if let provider { job["heraldProviderId"] = .string(provider) }
                if let stepState { job["result"] = stepState.json }
                return .object(job)
            }
            let profile = subscribers[notification.subscriberId]?.profile
            var subscriber: [String: JSONValue] = [
                "subscriberId": .string(notification.subscriberId),
                "_id": .string(subscribers[notification.subscriberId]?.id ?? notification.subscriberId),
            ]
            for (key, value) in [
                ("firstName", profile?.firstName), ("lastName", profile?.lastName), ("email", profile?.email), ("phone", profile?.phone),
            ] {
                if let value { subscriber[key] = .string(value) }
            }
            var object: [String: JSONValue] = [
                "_id": .string(notification.id), "_environmentId": .string(notification.environmentId),
                "_organizationId": .string(novuOrganizationId), "_subscriberId": .string(notification.subscriberId),
                "_templateId": .string(notification.workflowId), "transactionId": .string(notification.transactionId),
                "createdAt": .string(notification.createdAt.iso8601Milliseconds),
                "updatedAt": .string(notification.updatedAt.iso8601Milliseconds),
                "channels": .array(notification.channels.map(JSONValue.string)), "subscriber": .object(subscriber),
                "template": [
                    "_id": .string(notification.workflowId), "name": .string(workflow?.name ?? notification.workflowId),
                    "triggers": [["type": "event", "identifier": .string(notification.workflowId), "variables": []]],
                ],
                "jobs": .array(jobs), "status": .string(notification.status.rawValue),
                "critical": .bool(workflow?.critical ?? false),
            ]
            if let event = events[notification.eventId] { object["payload"] = event.payload }
            if let details = stepDetails[""], !details.isEmpty {
                object["executionDetails"] = .array(details.map(detailJSON))
            }
            if let topicKey = notification.topicKey { object["topics"] = [["_topicId": .string(topicKey), "topicKey": .string(topicKey)]] }
            return .object(object)
        }
    }

    /// Novu's job status for a step state.
    static func jobStatus(_ state: StepState?, notification: NotificationRecord) -> String {
        guard let state else { return notification.status == .canceled ? "canceled" : "pending" }
        switch state.status {
        case .pending: return "pending"
        case .running: return "running"
        case .waiting: return "delayed"
        case .completed: return "completed"
        case .failed: return "failed"
        case .skipped: return "skipped"
        case .canceled: return state.reason == StepState.mergedIntoDigest ? "merged" : "canceled"
        // Novu's job statuses have no "throttled": the SDK's enum is strict. `result.status` says throttled.
        case .throttled: return "skipped"
        }
    }

    static func detailJSON(_ detail: ExecutionDetail) -> JSONValue {
        var object: [String: JSONValue] = [
            "_id": .string(detail.id), "status": .string(detail.status.rawValue), "detail": .string(detail.detail),
            "isRetry": .bool(detail.isRetry), "isTest": false, "source": .string(detail.source.rawValue),
            "createdAt": .string(detail.createdAt.iso8601Milliseconds), "raw": detail.raw.map(JSONValue.string) ?? .null,
        ]
        if let providerId = detail.providerId, novuProviderIds.contains(providerId) { object["providerId"] = .string(providerId) }
        if let messageId = detail.messageId { object["_messageId"] = .string(messageId) }
        return .object(object)
    }
}
